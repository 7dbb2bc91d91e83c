import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import websocket from '@fastify/websocket';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { SolRelay } from './sol-relay.service';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const XTERM = dirname(require.resolve('@xterm/xterm/package.json'));

/**
 * The web serial console: `/console/<grant id>#<token>` for a customer (the token stays in the
 * fragment, so it reaches neither logs nor proxies), `/console/vps/<grant id>#<token>` for a
 * customer's VM, `/console/server/<server id>` and `/console/vm/<vm id>` for staff (they ask for
 * an API token), and the WebSocket all of them talk to.
 */
export async function registerConsoleWeb(app: NestFastifyApplication): Promise<void> {
  await app.register(websocket as never, { options: { maxPayload: 64 * 1024 } });
  const fastify = app.getHttpAdapter().getInstance();
  const relay = app.get(SolRelay);
  const assets: Record<string, { type: string; body: Buffer }> = {
    'xterm.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(join(XTERM, 'lib', 'xterm.js')) },
    'xterm.css': { type: 'text/css; charset=utf-8', body: readFileSync(join(XTERM, 'css', 'xterm.css')) },
  };

  fastify.get('/api/v1/console/ws', { websocket: true }, (socket: import('ws').WebSocket) => relay.accept(socket));
  fastify.get<{ Params: { name: string } }>('/console/assets/:name', async (req, reply) => {
    const a = assets[req.params.name];
    if (!a) return reply.code(404).send({ error: { code: 'not_found', message: `no console asset ${req.params.name}` } });
    return reply.type(a.type).header('cache-control', 'public, max-age=86400').send(a.body);
  });
  const page = (hello: string) => (req: unknown, reply: import('fastify').FastifyReply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'")
      .header('cache-control', 'no-store')
      .send(consolePage(hello));
  fastify.get<{ Params: { id: string } }>('/console/server/:id', (req, reply) => {
    if (!UUID.test(req.params.id)) return reply.code(404).send({ error: { code: 'not_found', message: 'no such server' } });
    return page(`{ server: ${JSON.stringify(req.params.id)}, apiToken: sessionStorage.racksmithToken || (sessionStorage.racksmithToken = prompt('API token') || '') }`)(req, reply);
  });
  fastify.get<{ Params: { id: string } }>('/console/vm/:id', (req, reply) => {
    if (!UUID.test(req.params.id)) return reply.code(404).send({ error: { code: 'not_found', message: 'no such VM' } });
    return page(`{ vm: ${JSON.stringify(req.params.id)}, apiToken: sessionStorage.racksmithToken || (sessionStorage.racksmithToken = prompt('API token') || '') }`)(req, reply);
  });
  fastify.get<{ Params: { id: string } }>('/console/vps/:id', (req, reply) => {
    if (!UUID.test(req.params.id)) return reply.code(404).send({ error: { code: 'not_found', message: 'no such console grant' } });
    return page(`{ vmGrant: ${JSON.stringify(req.params.id)}, token: location.hash.slice(1) }`)(req, reply);
  });
  fastify.get<{ Params: { id: string } }>('/console/:id', (req, reply) => {
    if (!UUID.test(req.params.id)) return reply.code(404).send({ error: { code: 'not_found', message: 'no such console grant' } });
    return page(`{ grant: ${JSON.stringify(req.params.id)}, token: location.hash.slice(1) }`)(req, reply);
  });
}

function consolePage(hello: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Serial console · racksmith</title>
<link rel="stylesheet" href="/console/assets/xterm.css">
<style>html,body{margin:0;height:100%;background:#111;color:#ddd;font:14px sans-serif}#bar{padding:6px 10px;background:#222}#term{height:calc(100% - 34px)}</style>
</head><body><div id="bar">Serial console: <span id="status">connecting…</span></div><div id="term"></div>
<script src="/console/assets/xterm.js"></script>
<script>
const term = new Terminal({ convertEol: false, cursorBlink: true, scrollback: 5000 });
term.open(document.getElementById('term'));
const status = (t) => (document.getElementById('status').textContent = t);
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/v1/console/ws');
ws.binaryType = 'arraybuffer';
ws.onopen = () => ws.send(JSON.stringify(${hello}));
ws.onmessage = (e) => {
  if (typeof e.data !== 'string') return term.write(new Uint8Array(e.data));
  const m = JSON.parse(e.data);
  if (m.type === 'error') status(m.message);
  else status((m.writer ? 'connected, you can type' : 'connected, read-only') + (m.message ? ' — ' + m.message : ''));
};
ws.onclose = (e) => status('closed' + (e.reason ? ': ' + e.reason : ''));
const enc = new TextEncoder();
term.onData((d) => ws.readyState === 1 && ws.send(enc.encode(d)));
term.focus();
</script></body></html>`;
}
