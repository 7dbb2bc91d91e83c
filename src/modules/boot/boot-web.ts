import { dirname, basename } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { BootScripts } from './boot-scripts.service';
import { viaBootListener } from './boot-http.service';

const MAC = /^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i;

/**
 * What machines on the provisioning network fetch over HTTP, on the boot listener only (see
 * BootHttp), without an API token (they have none; the install's own token is in what they are
 * given): `/boot/ipxe/<mac>` (the iPXE script), `/boot/templates/<job>/<token>/<file>`,
 * `/boot/images/<name>` and `/boot/assets/<os>/<kernel|initrd>` (streamed with Range, ETag and
 * Last-Modified).
 */
export async function registerBootWeb(app: NestFastifyApplication): Promise<void> {
  const fastify = app.getHttpAdapter().getInstance();
  await app.register(fastifyStatic as never, { root: '/', serve: false, decorateReply: true });
  const scripts = app.get(BootScripts);

  // Machines fetch from the boot listener only, and it serves them nothing else: `/boot/...` is
  // not on the API listener, and the API (but for the installers' callbacks) not on the boot one.
  fastify.addHook('onRequest', (req, reply, done) => {
    const path = req.url.split('?')[0]!;
    const viaBoot = viaBootListener(req.raw);
    const bootPath = path.startsWith('/boot/');
    if (viaBoot ? bootPath || path.startsWith('/api/v1/install-callbacks/') : !bootPath) return done();
    void reply
      .code(404)
      .header('cache-control', 'no-store')
      .send({ error: { code: 'not_found', message: viaBoot ? `the boot listener serves /boot/ and install callbacks only, not ${path}` : `${path} is served on the boot listener (RACKSMITH_BOOT_ADDRESS, port RACKSMITH_BOOT_HTTP_PORT), not on the API` } });
  });

  fastify.get<{ Params: { mac: string } }>('/boot/ipxe/:mac', async (req, reply) => {
    const mac = req.params.mac.toLowerCase().replace(/-/g, ':');
    if (!MAC.test(mac)) return reply.code(400).type('text/plain').send('#!ipxe\necho racksmith: not a MAC address\nexit 1\n');
    const s = await scripts.script(mac, req.ip);
    return reply.code(s.status).type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(s.body);
  });

  fastify.get<{ Params: { job: string; token: string; file: string } }>('/boot/templates/:job/:token/:file', async (req, reply) => {
    const text = await scripts.template(req.params.job, req.params.token, req.params.file, req.ip);
    return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(text);
  });

  fastify.get<{ Params: { name: string } }>('/boot/images/:name', async (req, reply) => {
    const file = /^[a-z0-9][a-z0-9._-]{0,62}$/.test(req.params.name) ? await scripts.imageFile(req.params.name) : null;
    if (!file) return reply.code(404).send({ error: { code: 'not_found', message: `no OS image ${req.params.name}` } });
    return (reply as unknown as { sendFile(name: string, root: string): unknown }).sendFile(basename(file), dirname(file));
  });

  fastify.get<{ Params: { os: string; which: string } }>('/boot/assets/:os/:which', async (req, reply) => {
    const file = scripts.asset(req.params.os, req.params.which);
    if (!file) return reply.code(404).send({ error: { code: 'not_found', message: `no boot asset ${req.params.os}/${req.params.which}` } });
    if (!req.headers.range || /^bytes=0-/.test(req.headers.range)) void scripts.fetched(req.params.os, req.params.which, req.ip).catch(() => undefined);
    return (reply as unknown as { sendFile(name: string, root: string): unknown }).sendFile(basename(file), dirname(file));
  });
}
