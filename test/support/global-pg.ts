import { createConnection } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { EmbeddedPostgres } from '../../src/database/embedded-postgres';

/**
 * Jest's global setup and teardown: the PostgreSQL the integration tests use.
 * `TEST_PG_ADMIN_URL` names one; otherwise the machine's on 127.0.0.1:5432; and when nothing
 * answers there, the same embedded PostgreSQL that `npm start` runs, in a directory of the tests'
 * own (`TEST_EMBEDDED_PG_DIR`, default <tmp>/racksmith-test-pg-<uid>) on `TEST_EMBEDDED_PG_PORT`
 * (default 54339), started here and stopped after the run.
 */
const STATE = '__racksmithTestPostgres';

export function answers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function setup(): Promise<void> {
  if (process.env.TEST_PG_ADMIN_URL || (await answers('127.0.0.1', 5432))) return;
  const dir = process.env.TEST_EMBEDDED_PG_DIR ?? join(tmpdir(), `racksmith-test-pg-${userInfo().uid}`);
  const port = Number(process.env.TEST_EMBEDDED_PG_PORT ?? 54339);
  const log = pino({ level: 'warn' }, pino.destination(2));
  const pg = new EmbeddedPostgres(dir, port, log);
  // adopt: a cluster left running by a killed run is stopped by this one.
  await pg.start({ adopt: true });
  process.env.TEST_PG_ADMIN_URL = `postgres://racksmith@127.0.0.1:${port}/postgres`;
  process.stderr.write(`\nnothing answers on 127.0.0.1:5432: the tests use an embedded PostgreSQL in ${dir} on port ${port}\n`);
  (globalThis as Record<string, unknown>)[STATE] = pg;
}

export async function teardown(): Promise<void> {
  const pg = (globalThis as Record<string, unknown>)[STATE] as EmbeddedPostgres | undefined;
  if (pg) await pg.stop();
}
