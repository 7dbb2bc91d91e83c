import { createServer, type Server, type Socket, connect } from 'node:net';
import { createTestDatabase, query, type TestDatabase } from '../support/db';
import { runCli, startServe } from '../support/cli';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

describe('racksmith CLI', () => {
  it.each([[[]], [['serve']], [['migrate']], [['token']], [['token', 'create']], [['token', 'list']], [['token', 'revoke']], [['config']], [['vps']], [['vps', 'create']]])(
    'has --help for %j',
    async (cmd) => {
      const res = await runCli([...cmd, '--help']);
      expect(res.code).toBe(0);
      expect(res.stdout).toContain(`Usage: racksmith${cmd.length ? ` ${cmd.join(' ')}` : ''}`);
    },
  );

  it('stops on bad configuration with one message naming every bad key', async () => {
    const res = await runCli(['serve'], { RACKSMITH_PORT: 'http', RACKSMITH_LOGLEVEL: 'debug', RACKSMITH_DB_POOL_SIZE: '0' });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('invalid configuration');
    expect(res.stderr).toContain('RACKSMITH_PORT: expected a TCP port from 0 to 65535, got "http"');
    expect(res.stderr).toContain('RACKSMITH_LOGLEVEL: unknown setting');
    expect(res.stderr).toContain('RACKSMITH_DB_POOL_SIZE: expected an integer from 1 to 200, got "0"');
  });

  it('runs no job worker in the api role', async () => {
    const served = await startServe({ DATABASE_URL: db.url }, ['--role', 'api']);
    try {
      const health = await (await fetch(`${served.url}/health`)).json();
      expect(health).toMatchObject({ role: 'api', checks: { database: { status: 'ok' } } });
      expect(health.checks.jobs).toBeUndefined();
    } finally {
      expect(await served.stop()).toBe(0);
    }
  });

  it('refuses an agent without a site', async () => {
    const res = await runCli(['serve', '--role', 'agent'], { DATABASE_URL: db.url });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('an agent serves one site');
  });

  it('fails fast, naming the host, when DATABASE_URL points nowhere', async () => {
    const res = await runCli(['serve'], { DATABASE_URL: 'postgres://racksmith:hunter2@127.0.0.1:1/racksmith' });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('cannot connect to PostgreSQL at 127.0.0.1:1/racksmith');
    expect(res.stderr).not.toContain('hunter2');
    expect(res.ms).toBeLessThan(10_000);
  });

  it('fails within 10 s, naming the host, when the database never answers', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    try {
      const res = await runCli(['migrate'], { DATABASE_URL: `postgres://racksmith@127.0.0.1:${port}/racksmith` }, 20_000);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(`cannot connect to PostgreSQL at 127.0.0.1:${port}/racksmith`);
      expect(res.ms).toBeLessThan(10_000);
    } finally {
      sockets.forEach((s) => s.destroy());
      silent.close();
    }
  });

  it('migrates, then finds nothing to do', async () => {
    const first = await runCli(['migrate'], { DATABASE_URL: db.url });
    expect(first.code).toBe(0);
    const second = await runCli(['migrate'], { DATABASE_URL: db.url });
    expect(second.stdout).toBe('database schema is up to date\n');
  });

  it('creates, lists and revokes tokens, audited as the CLI user', async () => {
    const env = { DATABASE_URL: db.url };
    const created = await runCli(['token', 'create', '--name', 'ops laptop', '--role', 'engineer', '--json'], env);
    expect(created.code).toBe(0);
    const token = JSON.parse(created.stdout);
    expect(token).toMatchObject({ name: 'ops laptop', role: 'engineer' });
    expect(token.token).toMatch(/^rs_/);

    const listed = await runCli(['token', 'list'], env);
    expect(listed.stdout).toContain(token.id);
    expect(listed.stdout).not.toContain(token.token);

    const bad = await runCli(['token', 'create', '--name', 'x', '--role', 'god'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('expected one of admin, engineer, support, billing, readonly');

    const revoked = await runCli(['token', 'revoke', token.id], env);
    expect(revoked.code).toBe(0);
    expect((await runCli(['token', 'list'], env)).stdout).not.toContain(token.id);
    expect((await runCli(['token', 'list', '--all'], env)).stdout).toContain(token.id);

    const missing = await runCli(['token', 'revoke', '00000000-0000-4000-8000-000000000000'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('does not exist (not_found)');

    const audit = await query(db.url, 'SELECT source, actor, actor_kind, action FROM audit_events WHERE target_id = $1 ORDER BY id', [token.id]);
    expect(audit).toEqual([
      { source: 'cli', actor: expect.stringMatching(/^cli:/), actor_kind: 'cli', action: 'token.create' },
      { source: 'cli', actor: expect.stringMatching(/^cli:/), actor_kind: 'cli', action: 'token.revoke' },
    ]);
  });

  it('prints the effective configuration with secrets hidden', async () => {
    const res = await runCli(['config'], { DATABASE_URL: 'postgres://u:secretpw@db.internal/rs', RACKSMITH_PORT: '9999' });
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/RACKSMITH_PORT\s+9999/);
    expect(res.stdout).toMatch(/DATABASE_URL\s+\(set, hidden\)/);
    expect(res.stdout).not.toContain('secretpw');
  });
});

describe('racksmith serve', () => {
  it('drains a request in flight on SIGTERM, then exits 0', async () => {
    const bootstrap = 'drain-test-bootstrap-token-0123456789';
    const served = await startServe({ DATABASE_URL: db.url, RACKSMITH_BOOTSTRAP_TOKEN: bootstrap });
    const { port } = new URL(served.url);
    const body = JSON.stringify({ name: 'made-during-shutdown', role: 'readonly' });
    const sock = connect(Number(port), '127.0.0.1');
    let answer = '';
    sock.on('data', (d) => (answer += d));
    const closed = new Promise((r) => sock.once('close', r));
    await new Promise((r) => sock.once('connect', r));
    // Half a request: headers and the first bytes of the body.
    sock.write(`POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${bootstrap}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 5)}`);
    await new Promise((r) => setTimeout(r, 300));
    const exit = served.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    sock.write(body.slice(5));
    expect(await exit).toBe(0);
    await closed;
    expect(answer).toMatch(/^HTTP\/1.1 201/);
    expect(await query(db.url, "SELECT role FROM api_tokens WHERE name = 'made-during-shutdown'")).toEqual([{ role: 'readonly' }]);
    expect(served.stdout()).toContain('shutting down: draining requests in flight');
  });
});
