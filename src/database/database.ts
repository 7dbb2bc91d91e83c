import { AsyncLocalStorage } from 'node:async_hooks';
import { DataSource, type EntityManager } from 'typeorm';
import { withDeadline } from '../common/concurrency';

/**
 * The connection and the unit of work. Services open a transaction with
 * `db.transaction(async () => ...)`; every repository call inside it runs on the same
 * transaction without the service passing a manager around (or importing TypeORM).
 */
export class Database {
  private readonly current = new AsyncLocalStorage<EntityManager>();

  /**
   * `background`: a small pool of its own for the work no request waits on (job tasks and their
   * heartbeats, the job reaper, the schedulers), so a burst of API requests that fills the main
   * pool never starves a heartbeat into a false takeover, nor a reaper into "connection timeout".
   */
  constructor(
    readonly dataSource: DataSource,
    private readonly backgroundSource?: DataSource,
  ) {}

  /** Runs fn (and everything it starts) on the background pool; without one, on the main pool. */
  background<T>(fn: () => Promise<T>): Promise<T> {
    return this.backgroundSource ? this.current.run(this.backgroundSource.manager, fn) : this.current.exit(fn);
  }

  /** The transaction in progress, or the pool. Repositories only. */
  manager(): EntityManager {
    return this.current.getStore() ?? this.dataSource.manager;
  }

  /** Rows of a raw statement, in the transaction in progress (TypeORM answers UPDATE … RETURNING with [rows, count]). */
  async rows<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const result = await this.manager().query(sql, params);
    return Array.isArray(result) && result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number' ? result[0] : result;
  }

  /**
   * Run fn in one transaction. Inside another one it becomes a savepoint: a failure rolls back
   * only fn's part, and the outer transaction stays usable (say, to explain the failure).
   */
  transaction<T>(fn: () => Promise<T>): Promise<T> {
    const outer = this.current.getStore();
    if (outer) return outer.transaction((manager) => this.current.run(manager, fn));
    return this.dataSource.transaction((manager) => this.current.run(manager, fn));
  }

  /** A transaction-scoped advisory lock: serialises fn across every racksmith process. */
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.transaction(async () => {
      await this.manager().query('SELECT pg_advisory_xact_lock(hashtext($1))', [key]);
      return fn();
    });
  }

  /**
   * A session advisory lock held on its own connection while fn runs; fn's own queries and
   * transactions commit as they go. For work outside the database that must not run twice at
   * once (the user slots of one BMC), where a crash half-way must leave committed rows behind.
   */
  async withSessionLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    // On the pool of the caller (main or background); fn runs outside any transaction, on that pool.
    const source = this.current.getStore()?.connection ?? this.dataSource;
    const runner = source.createQueryRunner();
    await runner.connect();
    try {
      await runner.query('SELECT pg_advisory_lock(hashtext($1))', [key]);
      try {
        return await (source === this.dataSource ? this.current.exit(fn) : this.current.run(source.manager, fn));
      } finally {
        await runner.query('SELECT pg_advisory_unlock(hashtext($1))', [key]);
      }
    } finally {
      await runner.release();
    }
  }

  async ping(timeoutMs = 2000): Promise<void> {
    await withDeadline(this.dataSource.query('SELECT 1'), timeoutMs, () => new Error(`no answer within ${timeoutMs} ms`));
  }

  async close(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
    if (this.backgroundSource?.isInitialized) await this.backgroundSource.destroy();
  }
}
