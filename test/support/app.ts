import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import pino from 'pino';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { loadConfig } from '../../src/config/config';
import { createHttpApp } from '../../src/http';
import { openRuntime, type Runtime } from '../../src/runtime';
import { BootHttp } from '../../src/modules/boot/boot-http.service';
import { startBootServices } from '../../src/modules/boot/boot-start';
import { createTestDatabase, type TestDatabase } from './db';

export const BOOTSTRAP = 'test-bootstrap-token-0123456789abcdef';
export const SECRET_KEY = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';

export interface TestApp {
  app: NestFastifyApplication;
  rt: Runtime;
  db: TestDatabase;
  /** fastify.inject with the admin (bootstrap) token unless `token` is given ('' sends none). */
  request(opts: { method?: string; url: string; body?: unknown; payload?: string; token?: string; headers?: Record<string, string> }): Promise<{
    status: number;
    headers: Record<string, string | string[] | number | undefined>;
    json: any;
    text: string;
  }>;
  /** A GET (or other) over real HTTP to the boot listener, as a machine on the provisioning network. */
  boot(path: string, opts?: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: IncomingHttpHeaders; json: any; text: string; body: Buffer }>;
  close(): Promise<void>;
}

/**
 * A test app on a fresh database, with the fake drivers the tests give it. Its boot services
 * are on by default as a role-all racksmith's would be, on loopback: the boot listener on a free
 * port, the site boot announcement (so installs and orders are not refused with
 * `boot_services_off`); TFTP and DHCP only where a test starts them. `RACKSMITH_BOOT_ADDRESS: ''`
 * turns them off.
 */

export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const db = await createTestDatabase();
  const config = loadConfig({ DATABASE_URL: db.url, RACKSMITH_BOOTSTRAP_TOKEN: BOOTSTRAP, RACKSMITH_SECRET_KEY: SECRET_KEY, RACKSMITH_BOOT_ADDRESS: '127.0.0.1', RACKSMITH_BOOT_HTTP_PORT: '0', ...env });
  const rt = await openRuntime(config, pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
  const app = await createHttpApp(rt);
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  const fastify = app.getHttpAdapter().getInstance();
  await startBootServices(app, null, { tftp: false, dhcp: false });
  return {
    app,
    rt,
    db,
    async request({ method = 'GET', url, body, payload, token = BOOTSTRAP, headers = {} }) {
      const h: Record<string, string> = { ...headers };
      if (token) h.authorization = `Bearer ${token}`;
      if (body !== undefined) h['content-type'] = 'application/json';
      const res = await fastify.inject({ method: method as never, url, headers: h, payload: payload ?? (body === undefined ? undefined : JSON.stringify(body)) });
      let json: unknown;
      try {
        json = res.json();
      } catch {
        json = undefined;
      }
      return { status: res.statusCode, headers: res.headers, json, text: res.body };
    },
    async boot(path, opts = {}) {
      const at = app.get(BootHttp).listening;
      if (!at) throw new Error('this test app has no boot listener (RACKSMITH_BOOT_ADDRESS is off)');
      // node:http, not fetch: the path goes out as written (fetch would resolve "..").
      const res = await new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
        const req = httpRequest({ host: at.address, port: at.port, path, method: opts.method ?? 'GET', headers: opts.headers }, (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => resolve({ status: r.statusCode!, headers: r.headers, body: Buffer.concat(chunks) }));
          r.on('error', reject);
        });
        req.on('error', reject);
        req.end(opts.body);
      });
      const text = res.body.toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { ...res, json, text };
    },
    async close() {
      await app.close();
      await rt.close();
      await db.drop();
    },
  };
}
