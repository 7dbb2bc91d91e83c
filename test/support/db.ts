import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/**
 * Each test file gets its own fresh database on the machine's PostgreSQL (127.0.0.1:5432 unless
 * TEST_PG_ADMIN_URL names another server; with neither, jest's global setup starts an embedded one
 * and sets TEST_PG_ADMIN_URL, see global-pg.ts), dropped afterwards.
 */
export const ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
  } catch (err) {
    throw new Error(`integration tests need PostgreSQL at ${ADMIN_URL.replace(/\/\/[^@]*@/, '//')}: ${(err as Error).message}`);
  }
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `racksmith_t_${process.pid}_${randomBytes(4).toString('hex')}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    name,
    // Pools that are still ending get a moment to close their connections: a FORCE drop kills
    // them, and a pool client killed while it ends emits an error nobody listens to any more.
    drop: () =>
      admin(async (c) => {
        for (let i = 0; i < 40; i++) {
          const { rows } = await c.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
          if (!rows[0].n) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      }),
  };
}

/** A direct client for assertions on the raw tables. */
export async function query<T = Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
}
