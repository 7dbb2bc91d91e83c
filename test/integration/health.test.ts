import { query } from '../support/db';
import { startTestApp, type TestApp } from '../support/app';

describe('/health when the database goes away', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t?.close());

  it('answers 503 naming the failing check, and 200 again once it is back', async () => {
    expect((await t.request({ url: '/health', token: '' })).status).toBe(200);
    // Lock the connections out: every new backend for this database is refused, and the pool's are killed.
    await query(t.db.url.replace(/\/[^/]+$/, '/postgres'), `ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS false`);
    await query(t.db.url.replace(/\/[^/]+$/, '/postgres'), 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [t.db.name]);
    const down = await t.request({ url: '/health', token: '' });
    expect(down.status).toBe(503);
    expect(down.json).toMatchObject({ status: 'failing', checks: { database: { status: 'failing' } } });
    expect(down.json.checks.database.detail).toEqual(expect.any(String));
    await query(t.db.url.replace(/\/[^/]+$/, '/postgres'), `ALTER DATABASE ${t.db.name} ALLOW_CONNECTIONS true`);
    let status = 0;
    for (let i = 0; i < 20 && status !== 200; i++) {
      status = (await t.request({ url: '/health', token: '' })).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
  });
});
