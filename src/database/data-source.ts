import { Client } from 'pg';
import { withDeadline } from '../common/concurrency';
import { DataSource } from 'typeorm';
import type { Logger } from 'pino';
import { ApiTokenEntity } from '../modules/auth/api-token.entity';
import { AuditEventEntity } from '../modules/audit/audit-event.entity';
import { INVENTORY_ENTITIES } from '../modules/inventory/inventory.entities';
import { ColocationEventEntity, ColocationItemEntity, VisitBookingEntity } from '../modules/colocation/colocation.entities';
import { WorkTaskEntity } from '../modules/work-queue/work-task.entity';
import { MIGRATIONS } from './migrations';

/** Every entity, listed by hand: no globs, so the built and the test code see the same set. */
export const ENTITIES = [ApiTokenEntity, AuditEventEntity, ...INVENTORY_ENTITIES, ColocationItemEntity, ColocationEventEntity, VisitBookingEntity, WorkTaskEntity];

export interface DataSourceOptions {
  url: string;
  poolSize: number;
  connectTimeoutSec: number;
  applicationName?: string;
}

export function createDataSource(opts: DataSourceOptions): DataSource {
  return new DataSource({
    type: 'postgres',
    url: opts.url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'schema_migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    applicationName: opts.applicationName ?? 'racksmith',
    extra: {
      max: opts.poolSize,
      connectionTimeoutMillis: opts.connectTimeoutSec * 1000,
      // A half-open TCP connection must not hang a query forever.
      keepAlive: true,
      // Short queries only: PostgreSQL's JIT, triggered by generate_series' row estimate, cost
      // 360 ms of compilation on a 10 ms site-utilisation query (bench/RESULTS.md).
      options: '-c jit=off',
    },
  });
}

/** "host:port/db" of a URL, for messages: never the password. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    const host = u.hostname || new URLSearchParams(u.search).get('host') || 'localhost';
    return `${host}:${u.port || 5432}${u.pathname}`;
  } catch {
    return 'an unparseable URL';
  }
}

export class DatabaseUnavailableError extends Error {
  constructor(url: string, cause: Error) {
    super(`cannot connect to PostgreSQL at ${describeUrl(url)}: ${cause.message || cause.name}`);
    this.name = 'DatabaseUnavailableError';
  }
}

/** Connect (bounded by the connect timeout) and bring the schema up to date. */
export async function connectAndMigrate(ds: DataSource, url: string, connectTimeoutSec: number, log: Logger): Promise<void> {
  try {
    await withDeadline(ds.initialize(), connectTimeoutSec * 1000, () => new Error(`no answer within ${connectTimeoutSec} s`));
  } catch (err) {
    if (ds.isInitialized) await ds.destroy().catch(() => undefined);
    throw new DatabaseUnavailableError(url, err as Error);
  }
  await migrate(ds, log);
}

/**
 * Apply pending migrations. Many processes may start at once on one database: a session
 * advisory lock, held on a connection of its own (outside the pool, so even a pool of one
 * works), lets exactly one migrate while the others wait, then find nothing to do.
 */
export async function migrate(ds: DataSource, log: Logger): Promise<string[]> {
  const { url, extra } = ds.options as { url: string; extra?: { connectionTimeoutMillis?: number } };
  const lock = new Client({ connectionString: url, connectionTimeoutMillis: extra?.connectionTimeoutMillis, application_name: 'racksmith-migrate' });
  await lock.connect();
  try {
    await lock.query("SELECT pg_advisory_lock(hashtext('racksmith:migrations'))");
    const done = await ds.runMigrations({ transaction: 'each' });
    for (const m of done) log.info({ migration: m.name }, 'migration applied');
    return done.map((m) => m.name);
  } finally {
    // Closing the session releases the lock.
    await lock.end().catch(() => undefined);
  }
}
