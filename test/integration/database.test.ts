import pino from 'pino';
import { loadConfig } from '../../src/config/config';
import { connectAndMigrate, createDataSource, DatabaseUnavailableError, migrate } from '../../src/database/data-source';
import { MIGRATIONS } from '../../src/database/migrations';
import { openRuntime } from '../../src/runtime';
import { TokenService } from '../../src/modules/auth/token.service';
import { AuditService } from '../../src/modules/audit/audit.service';
import { AuditRepository } from '../../src/modules/audit/audit.repository';
import { TokenRepository } from '../../src/modules/auth/token.repository';
import { createTestDatabase, query, type TestDatabase } from '../support/db';

const silent = pino({ level: 'silent' });
let db: TestDatabase;
beforeEach(async () => {
  db = await createTestDatabase();
});
afterEach(() => db.drop());

describe('migrations', () => {
  it('build the schema from an empty database, once, even with several processes starting together', async () => {
    const sources = Array.from({ length: 4 }, () => createDataSource({ url: db.url, poolSize: 2, connectTimeoutSec: 5 }));
    await Promise.all(sources.map((ds) => connectAndMigrate(ds, db.url, 5, silent)));
    const applied = await query<{ name: string }>(db.url, 'SELECT name FROM schema_migrations ORDER BY id');
    expect(applied.map((r) => r.name)).toEqual(MIGRATIONS.map((m) => new m().name));
    const tables = await query<{ table_name: string }>(db.url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1");
    expect(tables.map((t) => t.table_name)).toEqual([
      'api_tokens', 'audit_events', 'billing_events', 'billing_outbox', 'billing_plans', 'bmc_credentials', 'bmc_status', 'boot_agents', 'boot_networks', 'colocation_events', 'colocation_items', 'console_grants', 'customer_login_links', 'customer_power_actions', 'customer_tokens', 'customers', 'devices', 'dhcp_leases', 'discovered_macs', 'hardware_models', 'hypervisors', 'install_callbacks', 'install_templates', 'job_logs', 'job_tasks', 'jobs', 'nics', 'orders', 'os_images', 'pdus',
      'power_connections', 'power_events', 'power_feeds', 'power_panels', 'racks', 'schema_migrations', 'server_transitions', 'sites', 'visit_bookings', 'vm_addresses', 'vm_console_grants', 'vm_images', 'vm_ip_pools', 'vms', 'work_tasks',
    ]);
    expect(await migrate(sources[0], silent)).toEqual([]);
    await Promise.all(sources.map((ds) => ds.destroy()));
  });

  it('roll back cleanly (down) and apply again', async () => {
    const ds = createDataSource({ url: db.url, poolSize: 2, connectTimeoutSec: 5 });
    await connectAndMigrate(ds, db.url, 5, silent);
    for (let i = 0; i < MIGRATIONS.length; i++) await ds.undoLastMigration();
    expect(await query(db.url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'schema_migrations'")).toEqual([]);
    expect((await migrate(ds, silent)).length).toBe(MIGRATIONS.length);
    await ds.destroy();
  });

  it('enforce the token role in the database, not only in code', async () => {
    const ds = createDataSource({ url: db.url, poolSize: 1, connectTimeoutSec: 5 });
    await connectAndMigrate(ds, db.url, 5, silent);
    await expect(ds.query("INSERT INTO api_tokens (name, role, token_hash, prefix, created_by) VALUES ('x', 'root', 'h', 'p', 't')")).rejects.toThrow(/check constraint/);
    await ds.destroy();
  });
});

describe('connection failures', () => {
  it('name the host when nothing listens there', async () => {
    const url = 'postgres://racksmith@127.0.0.1:1/racksmith';
    const started = Date.now();
    const ds = createDataSource({ url, poolSize: 1, connectTimeoutSec: 3 });
    await expect(connectAndMigrate(ds, url, 3, silent)).rejects.toThrow(new DatabaseUnavailableError(url, new Error('x')).message.replace(': x', ''));
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('the background pool', () => {
  it('serves job and scheduler work while every API connection is busy; a request that finds none gets 503 database_busy', async () => {
    const config = loadConfig({ DATABASE_URL: db.url, RACKSMITH_DB_POOL_SIZE: '1', RACKSMITH_DB_CONNECT_TIMEOUT: '1', RACKSMITH_DB_BACKGROUND_POOL_SIZE: '2' });
    const rt = await openRuntime(config, silent, { background: true });
    try {
      // The one API connection is held (a long transaction, as a burst of requests would hold them).
      let release!: () => void;
      const held = rt.db.transaction(() => new Promise<void>((r) => (release = r)));
      await new Promise((r) => setTimeout(r, 100));
      const apiSide = rt.db.manager().query('SELECT 1').then(() => 'answered', (err: Error) => err);
      const bg = await rt.db.background(async () => {
        const [me] = await rt.db.manager().query('SELECT current_setting($1) AS app', ['application_name']);
        // A transaction and a session lock in the background stay on the background pool too.
        const inTx = await rt.db.transaction(async () => (await rt.db.manager().query('SELECT current_setting($1) AS app', ['application_name']))[0].app);
        const locked = await rt.db.withSessionLock('bg-test', async () => (await rt.db.manager().query('SELECT current_setting($1) AS app', ['application_name']))[0].app);
        return [me.app, inTx, locked];
      });
      expect(bg).toEqual(['racksmith-background', 'racksmith-background', 'racksmith-background']);
      const refused = await apiSide;
      expect(refused).toBeInstanceOf(Error);
      const { toErrorResponse } = await import('../../src/common/http/error.filter');
      expect(toErrorResponse(refused, { method: 'GET', url: '/x' }, 1000)).toEqual({ status: 503, body: { error: { code: 'database_busy', message: expect.stringContaining('try again') } } });
      release();
      await held;
    } finally {
      await rt.close();
    }
  });
});

describe('first start', () => {
  it('creates exactly one initial admin token when several processes start at once', async () => {
    const config = loadConfig({ DATABASE_URL: db.url });
    const runtimes = await Promise.all(Array.from({ length: 4 }, () => openRuntime(config, silent)));
    const services = runtimes.map((rt) => new TokenService(new TokenRepository(rt.db), new AuditService(new AuditRepository(rt.db)), rt.db, config));
    const created = (await Promise.all(services.map((s) => s.ensureInitialAdmin()))).filter(Boolean);
    expect(created).toHaveLength(1);
    expect(created[0]!.role).toBe('admin');
    expect(await services[0].ensureInitialAdmin()).toBeNull();
    expect(await query(db.url, 'SELECT name, role, created_by FROM api_tokens')).toEqual([{ name: 'initial-admin', role: 'admin', created_by: 'system' }]);
    await Promise.all(runtimes.map((rt) => rt.close()));
  });

  it('creates none when a bootstrap token is configured', async () => {
    const config = loadConfig({ DATABASE_URL: db.url, RACKSMITH_BOOTSTRAP_TOKEN: 'x'.repeat(32) });
    const rt = await openRuntime(config, silent);
    const s = new TokenService(new TokenRepository(rt.db), new AuditService(new AuditRepository(rt.db)), rt.db, config);
    expect(await s.ensureInitialAdmin()).toBeNull();
    expect(await query(db.url, 'SELECT count(*)::int AS n FROM api_tokens')).toEqual([{ n: 0 }]);
    await rt.close();
  });
});
