import { chmodSync, existsSync, lstatSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { createServer } from 'node:net';
import { freePort, runCli, startServe } from '../support/cli';

/**
 * The two-command start: with no DATABASE_URL, `serve` runs an embedded PostgreSQL in the data
 * directory, reuses it on the next start, and stops it on shutdown.
 */
describe('embedded PostgreSQL (no DATABASE_URL)', () => {
  let parent: string;
  let dataDir: string;
  beforeAll(() => {
    parent = mkdtempSync(join(tmpdir(), 'racksmith-embedded-'));
    chmodSync(parent, 0o755);
    // Not there yet, as ./var on a fresh clone.
    dataDir = join(parent, 'var');
  });
  afterAll(() => rmSync(parent, { recursive: true, force: true }));

  it('starts on a fresh data directory, reuses it on the next start, and stops with the service', async () => {
    const pgPort = await freePort();
    const env = { RACKSMITH_DATA_DIR: dataDir, RACKSMITH_EMBEDDED_PG_PORT: String(pgPort) };
    const pidFile = join(dataDir, 'postgres', 'postmaster.pid');

    const first = await startServe(env, [], 120_000);
    let token: string;
    try {
      const m = /^\s+(rs_[A-Za-z0-9_-]{43})$/m.exec(first.stdout());
      expect(m).not.toBeNull();
      token = m![1];
      const health = await fetch(`${first.url}/health`);
      expect(health.status).toBe(200);
      // Role all: the job worker runs in this process too.
      expect(await health.json()).toMatchObject({ status: 'ok', checks: { database: { status: 'ok' }, jobs: { status: 'ok' } } });
      expect(existsSync(pidFile)).toBe(true);
      // The cluster is in the data directory itself, not moved elsewhere.
      expect(lstatSync(join(dataDir, 'postgres')).isSymbolicLink()).toBe(false);
      const me = await fetch(`${first.url}/api/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });
      expect(await me.json()).toMatchObject({ name: 'initial-admin', role: 'admin' });

      // A CLI command on the same data directory uses the running cluster and leaves it running.
      const listed = await runCli(['token', 'list'], env);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toContain('initial-admin');
      expect((await fetch(`${first.url}/health`)).status).toBe(200);
    } finally {
      expect(await first.stop('SIGTERM')).toBe(0);
    }
    expect(existsSync(pidFile)).toBe(false);

    // kill -9 leaves PostgreSQL running; the next serve adopts it and stops it on shutdown.
    const killed = await startServe(env, [], 120_000);
    expect(await killed.stop('SIGKILL')).toBeNull();
    expect(existsSync(pidFile)).toBe(true);

    const second = await startServe(env, [], 120_000);
    try {
      // Same cluster, same data: the old token still works and no new one is printed.
      expect(second.stdout()).not.toMatch(/rs_[A-Za-z0-9_-]{43}/);
      const me = await fetch(`${second.url}/api/v1/whoami`, { headers: { authorization: `Bearer ${token!}` } });
      expect(me.status).toBe(200);
    } finally {
      expect(await second.stop('SIGINT')).toBe(0);
    }
    expect(existsSync(pidFile)).toBe(false);

    // Its port taken by something else: a clear error naming the port and the setting.
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(pgPort, '127.0.0.1', r));
    try {
      const res = await runCli(['serve'], { ...env, RACKSMITH_PORT: '0' }, 60_000);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(`the embedded PostgreSQL did not start on port ${pgPort}`);
      expect(res.stderr).toContain('RACKSMITH_EMBEDDED_PG_PORT');
    } finally {
      squatter.close();
    }
  }, 300_000);

  // As root, PostgreSQL runs as the postgres user; a data directory it cannot reach (a clone
  // under /root, mkdtemp's 0700) must still work: the cluster moves out and a link leads to it.
  (userInfo().uid === 0 ? it : it.skip)('works from a data directory the postgres user cannot reach', async () => {
    const closed = mkdtempSync(join(tmpdir(), 'racksmith-closed-'));
    let target: string | undefined;
    try {
      const served = await startServe({ RACKSMITH_DATA_DIR: closed, RACKSMITH_EMBEDDED_PG_PORT: String(await freePort()) }, [], 120_000);
      try {
        expect((await fetch(`${served.url}/health`)).status).toBe(200);
        const link = join(closed, 'postgres');
        expect(lstatSync(link).isSymbolicLink()).toBe(true);
        target = readlinkSync(link);
        expect(target).toMatch(/^\/var\/lib\/racksmith\/[0-9a-f]{16}$/);
        expect(served.stdout()).toContain('the postgres user cannot reach the data directory');
      } finally {
        expect(await served.stop()).toBe(0);
      }
    } finally {
      rmSync(closed, { recursive: true, force: true });
      if (target) rmSync(target, { recursive: true, force: true });
    }
  }, 180_000);
});
