import pino from 'pino';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { loadConfig } from '../../src/config/config';
import { createHttpApp } from '../../src/http';
import { openRuntime, type Runtime } from '../../src/runtime';
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
  close(): Promise<void>;
}

export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const db = await createTestDatabase();
  const config = loadConfig({ DATABASE_URL: db.url, RACKSMITH_BOOTSTRAP_TOKEN: BOOTSTRAP, RACKSMITH_SECRET_KEY: SECRET_KEY, ...env });
  const rt = await openRuntime(config, pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
  const app = await createHttpApp(rt);
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  const fastify = app.getHttpAdapter().getInstance();
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
    async close() {
      await app.close();
      await rt.close();
      await db.drop();
    },
  };
}
