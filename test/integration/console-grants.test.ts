import { SECRET_KEY, startTestApp, type TestApp } from '../support/app';
import { startServe, type Served } from '../support/cli';
import { query } from '../support/db';
import { spawn } from 'node:child_process';
import { IPMITOOL, ipmitoolAs, startSimBmc, type SimBmc } from '../support/ipmi-sim';
import { until } from '../support/wait';
import { ConsoleReconciler } from '../../src/modules/console/console-reconciler.service';
import { BillingProcessor } from '../../src/modules/billing/billing-processor.service';
import { signatureHeader } from '../../src/modules/billing/billing-signature';

jest.setTimeout(90_000);

const BILLING_SECRET = 'billing-secret-0123456789';

let t: TestApp;
const sims: SimBmc[] = [];
let modelId: string;
let n = 0;

beforeAll(async () => {
  // Two grant slots, so "no free slot" is quick to reach.
  t = await startTestApp({ RACKSMITH_POWER_SYNC_INTERVAL: '0', RACKSMITH_CONSOLE_SLOTS: '10-11', RACKSMITH_CONSOLE_RECONCILE_INTERVAL: '0', RACKSMITH_BILLING_SECRETS: BILLING_SECRET });
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
  modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'IPMI', heightU: 1, bmcDriver: 'ipmitool' } })).json.id;
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  await Promise.all(sims.map((s) => s.stop()));
  await t?.close();
});

async function serverWithSim(opts: { acceptRisk?: boolean; withSol?: boolean } = {}): Promise<{ id: string; bmc: SimBmc }> {
  const bmc = await startSimBmc({ withSol: opts.withSol });
  sims.push(bmc);
  const res = await t.request({
    method: 'POST',
    url: '/api/v1/devices',
    body: { site: 'lab', name: `kvm-${++n}`, role: 'rented-server', modelId, bmc: { address: bmc.address, username: bmc.username, password: bmc.password, acceptPrivilegeRisk: opts.acceptRisk ?? false } },
  });
  expect(res.status).toBe(201);
  for (const to of ['available', 'reserved', 'deploying', 'active']) await t.request({ method: 'POST', url: `/api/v1/servers/${res.json.id}/transition`, body: { to } });
  return { id: res.json.id, bmc };
}

const slotName = (bmc: SimBmc, slot: number) => {
  const line = ipmitoolAs(bmc, bmc.username, bmc.password, 'ADMINISTRATOR', 'user', 'list', '1').stdout.split('\n').find((l) => l.startsWith(`${slot} `)) ?? '';
  return line.split(/\s+/)[1] === 'true' ? '' : (line.split(/\s+/)[1] ?? '');
};
const logsIn = (bmc: SimBmc, user: string, password: string) => /Chassis Power is/.test(ipmitoolAs(bmc, user, password, 'OPERATOR', 'power', 'status').stdout);
/** Handles of the sessions the BMC lists for the user in `slot`, as an administrator sees them. */
const sessionsOf = (bmc: SimBmc, slot: number) =>
  ipmitoolAs(bmc, bmc.username, bmc.password, 'ADMINISTRATOR', 'session', 'info', 'all')
    .stdout.split(/\n\s*\n/)
    .filter((b) => Number(/user id\s*:\s*(\d+)/.exec(b)?.[1]) === slot && Number(/session handle\s*:\s*(\d+)/.exec(b)?.[1]))
    .map((b) => Number(/session handle\s*:\s*(\d+)/.exec(b)![1]));

interface Client {
  type(s: string): void;
  output(): string;
  exited: Promise<{ code: number | null; at: number }>;
  /** Ends stdin (ipmitool closes its session), or kills it by pid if it is still there after 3 s. */
  stop(): Promise<void>;
}
const clients: Client[] = [];
/** The customer's own ipmitool with the grant's credentials (`sol activate` or `shell`), typed into through stdin. */
function customer(bmc: SimBmc, user: string, password: string, ...command: string[]): Client {
  const [host, port] = bmc.address.split(':');
  // stdbuf: ipmitool's stdout to a pipe is block-buffered, and its "operational" line would wait.
  const proc = spawn('stdbuf', ['-o0', IPMITOOL, '-I', 'lanplus', '-C', '3', '-H', host!, '-p', port!, '-U', user, '-E', '-L', 'OPERATOR', ...command], { env: { ...process.env, IPMI_PASSWORD: password }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  proc.stdin.on('error', () => undefined);
  const exited = new Promise<{ code: number | null; at: number }>((r) => proc.on('exit', (code) => r({ code, at: Date.now() })));
  const c: Client = {
    type: (text) => void (proc.stdin.writable && proc.stdin.write(text)),
    output: () => out,
    exited,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.stdin.end();
      const done = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 3000))]);
      if (!done) {
        process.kill(proc.pid!, 'SIGKILL');
        await exited;
      }
    },
  };
  clients.push(c);
  return c;
}
const within = <T>(p: Promise<T>, ms: number) => Promise.race([p, new Promise<null>((r) => setTimeout(() => r(null), ms))]);

/** The customer's SOL is live: what they type reaches the machine's serial port. */
async function solOpen(bmc: SimBmc, g: { username: string; password: string }): Promise<Client> {
  const sol = customer(bmc, g.username, g.password, 'sol', 'activate');
  await until(async () => sol.output(), (o) => /SOL Session operational/.test(o), 10_000, 50);
  sol.type('typed-before\r');
  await until(async () => bmc.serial.received(), (r) => r.includes('typed-before'), 5_000, 50);
  return sol;
}

/** After the grant ended: the customer's next keystroke ends their client within 5 s and never reaches the machine. */
async function solEnded(bmc: SimBmc, sol: Client, since: number): Promise<void> {
  sol.type('typed-after\r');
  const ended = await within(sol.exited, 5_000);
  expect(ended).not.toBeNull();
  expect(ended!.at - since).toBeLessThan(5_000);
  expect(sol.output()).toMatch(/SOL session closed by BMC/);
  expect(bmc.serial.received()).not.toContain('typed-after');
}

const grant = (id: string, body: unknown = { customer: 'cust-1', ttl: 3600 }) => t.request({ method: 'POST', url: `/api/v1/servers/${id}/console-grants`, body });

describe('IPKVM grants on ipmi_sim', () => {
  it('a paid order for a plan with IPKVM does not pick a server whose BMC cannot give a privilege-safe account: it waits, naming the BMC, and the check leaves no account', async () => {
    const bmc = await startSimBmc();
    sims.push(bmc);
    const dev = await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: `kvm-order-${++n}`, role: 'rented-server', modelId, bmc: { address: bmc.address, username: bmc.username, password: bmc.password } } });
    expect((await t.request({ method: 'POST', url: `/api/v1/servers/${dev.json.id}/transition`, body: { to: 'available' } })).status).toBeLessThan(300);
    expect((await t.request({ method: 'PUT', url: '/api/v1/billing/plans/kvm-plan', body: { kind: 'dedicated', spec: { hardwareModel: 'T/IPMI' } } })).status).toBe(201);
    const payload = JSON.stringify({ id: 'evt-kvm-order', type: 'order.paid', occurredAt: new Date().toISOString(), order: { id: 'ord-kvm-sim', customer: 'cust-9', plan: 'kvm-plan', options: { sshKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl c@example'] } } });
    const posted = await t.request({ method: 'POST', url: '/webhooks/billing', payload, headers: { 'content-type': 'application/json', 'racksmith-signature': signatureHeader(BILLING_SECRET, payload) }, token: '' });
    expect(posted.status).toBe(202);
    expect(await t.app.get(BillingProcessor).processOne()).toBe(true);
    const order = (await t.request({ url: '/api/v1/billing/orders/ord-kvm-sim' })).json;
    expect(order).toMatchObject({ state: 'backordered', serverId: null });
    const [task] = await query<{ title: string }>(t.db.url, "SELECT title FROM work_tasks WHERE ref_id = 'ord-kvm-sim' AND kind = 'backorder'");
    expect(task.title).toContain(`kvm-order-${n}: BMC ${bmc.address} of server kvm-order-${n} does not enforce privilege limits`);
    // Nothing was powered, no job made, and the BMC's grant slots are empty again.
    expect(await query(t.db.url, 'SELECT id FROM jobs WHERE server_id = $1', [dev.json.id])).toEqual([]);
    expect(bmc.chassisLog().filter((l) => l.startsWith('power'))).toEqual([]);
    expect(slotName(bmc, 10)).toBe('');
    expect(slotName(bmc, 11)).toBe('');
    expect((await t.request({ url: `/api/v1/servers/${dev.json.id}/power` })).json.privilegeCheck).toBe('privilege-unsafe');
    expect((await t.request({ url: `/api/v1/servers/${dev.json.id}` })).json.state).toBe('available');
    // Taken out of stock for the tests below.
    await t.request({ method: 'PUT', url: `/api/v1/servers/${dev.json.id}/maintenance`, body: { enabled: true, reason: 'test done' } });
  });

  it('refuses the grant on a BMC that does not enforce privilege limits, and leaves no account behind', async () => {
    const { id, bmc } = await serverWithSim();
    const res = await grant(id);
    expect(res.status).toBe(409);
    expect(res.json.error.code).toBe('bmc_privilege_unsafe');
    expect(res.json.error.message).toMatch(/ADMINISTRATOR session/);
    expect(slotName(bmc, 10)).toBe('');
    expect(slotName(bmc, 11)).toBe('');
    const [row] = await query<{ state: string; username: string }>(t.db.url, 'SELECT state, username FROM console_grants WHERE device_id = $1', [id]);
    expect(row.state).toBe('refused');
    expect(ipmitoolAs(bmc, bmc.username, bmc.password, 'ADMINISTRATOR', 'user', 'list', '1').stdout).not.toContain(row.username);
    expect((await t.request({ url: `/api/v1/servers/${id}/power` })).json.privilegeCheck).toBe('privilege-unsafe');
  });

  it('with the risk accepted: OPERATOR credentials that log in, audited as such; revoke makes the login fail', async () => {
    const { id, bmc } = await serverWithSim({ acceptRisk: true });
    const res = await grant(id);
    expect(res.status).toBe(201);
    const g = res.json;
    expect(g).toMatchObject({ state: 'active', customer: 'cust-1', slot: 10, riskAccepted: true, bmcHost: bmc.address });
    expect(g.username).toMatch(/^rs-[a-z0-9]{8}$/);
    expect(g.password).toHaveLength(16);
    expect(g.consoleUrl).toMatch(new RegExp(`/console/${g.id}#.+`));
    expect(Date.parse(g.expiresAt) - Date.now()).toBeGreaterThan(3500_000);
    expect(slotName(bmc, 10)).toBe(g.username);
    expect(logsIn(bmc, g.username, g.password)).toBe(true);
    // Shown once: never again, and not in the audit log.
    expect((await t.request({ url: `/api/v1/console-grants/${g.id}` })).text).not.toContain(g.password);
    const audit = await t.request({ url: `/api/v1/audit?action=console-grant.create&targetId=${id}` });
    expect(audit.json.items[0].changes.riskAccepted).toMatch(/does not enforce privilege limits/);
    expect(audit.text).not.toContain(g.password);

    const revoked = await t.request({ method: 'DELETE', url: `/api/v1/console-grants/${g.id}` });
    expect(revoked.json).toMatchObject({ state: 'revoked', revokeReason: 'revoked by request' });
    expect(logsIn(bmc, g.username, g.password)).toBe(false);
    expect(slotName(bmc, 10)).toBe('');
    // Again: nothing to do, same answer.
    expect((await t.request({ method: 'DELETE', url: `/api/v1/console-grants/${g.id}` })).json.state).toBe('revoked');
  });

  it('extending keeps the account; expiry revokes it; no free slot is a 409 naming the BMC', async () => {
    const { id, bmc } = await serverWithSim({ acceptRisk: true });
    // At once: the BMC's lock gives each its own slot.
    const [a, b] = (await Promise.all([grant(id, { customer: 'c-a', ttl: 600 }), grant(id, { customer: 'c-b', ttl: 600 })])).map((r) => r.json);
    expect([a.slot, b.slot].sort()).toEqual([10, 11]);
    const full = await grant(id);
    expect(full.status).toBe(409);
    expect(full.json.error.code).toBe('no_free_bmc_slot');
    expect(full.json.error.message).toContain(bmc.address);

    const ext = await t.request({ method: 'PATCH', url: `/api/v1/console-grants/${a.id}`, body: { ttl: 7200 } });
    expect(ext.status).toBe(200);
    expect(Date.parse(ext.json.expiresAt) - Date.now()).toBeGreaterThan(7000_000);
    expect(logsIn(bmc, a.username, a.password)).toBe(true);

    await query(t.db.url, "UPDATE console_grants SET expires_at = now() - interval '1 second' WHERE id = $1", [b.id]);
    const sweep = await t.request({ method: 'POST', url: '/api/v1/console-grants/reconcile' });
    expect(sweep.json).toMatchObject({ revoked: 1, pending: 0 });
    expect((await t.request({ url: `/api/v1/console-grants/${b.id}` })).json).toMatchObject({ state: 'revoked', revokeReason: 'expired', revokedBy: 'console-reconciler' });
    expect(logsIn(bmc, b.username, b.password)).toBe(false);
    expect(logsIn(bmc, a.username, a.password)).toBe(true);
    // Suspension revokes too.
    await t.request({ method: 'POST', url: `/api/v1/servers/${id}/transition`, body: { to: 'suspended' } });
    await t.request({ method: 'POST', url: '/api/v1/console-grants/reconcile' });
    expect((await t.request({ url: `/api/v1/console-grants/${a.id}` })).json).toMatchObject({ state: 'revoked', revokeReason: 'server suspended' });
    expect(logsIn(bmc, a.username, a.password)).toBe(false);
    expect((await grant(id)).json.error.code).toBe('server_not_grantable');
  });

  it('removes racksmith accounts no grant owns, and leaves staff accounts alone', async () => {
    const { id, bmc } = await serverWithSim({ acceptRisk: true });
    const g = (await grant(id)).json;
    await t.request({ method: 'DELETE', url: `/api/v1/console-grants/${g.id}` });
    // A leftover from a crash, and a staff account someone put into a grant slot.
    const admin = (...c: string[]) => ipmitoolAs(bmc, bmc.username, bmc.password, 'ADMINISTRATOR', ...c);
    admin('user', 'set', 'name', '10', 'rs-leftover');
    admin('user', 'set', 'name', '11', 'night-ops');
    const sweep = await t.request({ method: 'POST', url: '/api/v1/console-grants/reconcile' });
    expect(sweep.json.unknownRemoved).toBe(1);
    expect(slotName(bmc, 10)).toBe('');
    expect(slotName(bmc, 11)).toBe('night-ops');
  });

  it('a BMC that stops answering leaves the grant revoke-pending, retried, then in the work queue', async () => {
    const { id, bmc } = await serverWithSim({ acceptRisk: true });
    const g = (await grant(id)).json;
    await bmc.stop();
    const started = Date.now();
    const res = await t.request({ method: 'DELETE', url: `/api/v1/console-grants/${g.id}` });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(res.json).toMatchObject({ state: 'revoke-pending', revokeAttempts: 1 });
    expect(res.json.lastError).toContain(bmc.address);
    await t.request({ method: 'POST', url: '/api/v1/console-grants/reconcile' });
    await t.request({ method: 'POST', url: '/api/v1/console-grants/reconcile' });
    expect((await t.request({ url: `/api/v1/console-grants/${g.id}` })).json).toMatchObject({ state: 'revoke-pending', revokeAttempts: 3 });
    const tasks = await t.request({ url: '/api/v1/sites/lab/work-queue' });
    expect(tasks.json.items.some((w: { kind: string; title: string }) => w.kind === 'automation-failure' && w.title.includes(g.username))).toBe(true);
  });

  it('a device with a live grant keeps its BMC and cannot be deleted until the grant is revoked', async () => {
    const { id, bmc } = await serverWithSim({ acceptRisk: true });
    const g = (await grant(id)).json;
    const del = await t.request({ method: 'DELETE', url: `/api/v1/devices/${id}` });
    expect(del.status).toBe(409);
    expect(del.json.error).toMatchObject({ code: 'console_grants_live', message: expect.stringContaining('revoke them') });
    const moved = await t.request({ method: 'PATCH', url: `/api/v1/devices/${id}`, body: { bmc: { address: '127.0.0.9:623' } } });
    expect(moved.status).toBe(409);
    expect((await t.request({ method: 'PATCH', url: `/api/v1/devices/${id}`, body: { bmc: null } })).status).toBe(409);
    // The same BMC with a new password is fine.
    expect((await t.request({ method: 'PATCH', url: `/api/v1/devices/${id}`, body: { bmc: { address: bmc.address, password: bmc.password } } })).status).toBe(200);

    await t.request({ method: 'DELETE', url: `/api/v1/console-grants/${g.id}` });
    expect((await t.request({ method: 'DELETE', url: `/api/v1/devices/${id}` })).status).toBe(204);
  });

  it('bad input: unknown server 404, ttl out of bounds 400 naming ttl, missing customer 400', async () => {
    const { id } = await serverWithSim({ acceptRisk: true });
    expect((await grant('00000000-0000-4000-8000-000000000000')).status).toBe(404);
    for (const ttl of [10, 365 * 86400]) {
      const res = await grant(id, { customer: 'c', ttl });
      expect(res.status).toBe(400);
      expect(res.json.error.field).toBe('ttl');
    }
    const res = await grant(id, { ttl: 600 });
    expect(res.json.error.field).toBe('customer');
    expect(await query(t.db.url, 'SELECT 1 FROM console_grants WHERE device_id = $1', [id])).toHaveLength(0);
  });
});

describe('a grant that ends while racksmith is stopped', () => {
  let served: Served | undefined;
  const serveEnv = () => ({ DATABASE_URL: t.db.url, RACKSMITH_SECRET_KEY: SECRET_KEY, RACKSMITH_INVENTORY_SEED: '', RACKSMITH_CONSOLE_SLOTS: '10-11', RACKSMITH_POWER_SYNC_INTERVAL: '0', RACKSMITH_CONSOLE_RECONCILE_INTERVAL: '0' });
  afterAll(async () => served?.stop('SIGTERM'));

  it('is revoked at the next start', async () => {
    const { id, bmc } = await serverWithSim({ acceptRisk: true });
    const g = (await grant(id, { customer: 'c-stop', ttl: 600 })).json;
    expect(logsIn(bmc, g.username, g.password)).toBe(true);
    // Time passes with no racksmith running: the grant is over.
    await query(t.db.url, "UPDATE console_grants SET expires_at = now() - interval '1 minute' WHERE id = $1", [g.id]);
    served = await startServe(serveEnv());
    await until(() => query<{ state: string }>(t.db.url, 'SELECT state FROM console_grants WHERE id = $1', [g.id]), (r) => r[0].state === 'revoked', 20_000, 100);
    expect(logsIn(bmc, g.username, g.password)).toBe(false);
  });

  it('a grant made before the restart that ends after it is revoked within 5 s of its expiresAt (the start arms its timer)', async () => {
    const { id, bmc } = await serverWithSim({ acceptRisk: true });
    const g = (await grant(id, { customer: 'c-restart', ttl: 600 })).json;
    await served!.stop('SIGTERM');
    const [{ expires_at }] = await query<{ expires_at: Date }>(t.db.url, "UPDATE console_grants SET expires_at = now() + interval '12 seconds' WHERE id = $1 RETURNING expires_at", [g.id]);
    served = await startServe(serveEnv());
    expect(Date.now()).toBeLessThan(expires_at.getTime());
    expect(logsIn(bmc, g.username, g.password)).toBe(true);
    const rows = await until(() => query<{ state: string; revoked_at: Date | null }>(t.db.url, 'SELECT state, revoked_at FROM console_grants WHERE id = $1', [g.id]), (r) => r[0].state !== 'active', 30_000, 100);
    expect(rows[0].state).toBe('revoked');
    const late = rows[0].revoked_at!.getTime() - expires_at.getTime();
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThan(5_000);
    expect(logsIn(bmc, g.username, g.password)).toBe(false);
  });
});

describe("revoking ends the customer's own sessions (ipmi_sim, real ipmitool)", () => {
  it('DELETE: the SOL session opened with the grant is closed by id, the BMC lists none of the user, and the client ends', async () => {
    const { id, bmc } = await serverWithSim({ acceptRisk: true, withSol: true });
    const g = (await grant(id)).json;
    const sol = await solOpen(bmc, g);
    expect(sessionsOf(bmc, g.slot)).toHaveLength(1);

    const res = await t.request({ method: 'DELETE', url: `/api/v1/console-grants/${g.id}` });
    const revokedAt = Date.now();
    expect(res.json).toMatchObject({ state: 'revoked', lastError: null });
    expect(sessionsOf(bmc, g.slot)).toEqual([]);
    await solEnded(bmc, sol, revokedAt);
    expect(logsIn(bmc, g.username, g.password)).toBe(false);
    const audit = await t.request({ url: `/api/v1/audit?action=console-grant.revoke&targetId=${id}` });
    expect(audit.json.items[0].changes).toMatchObject({ grantId: g.id, state: 'revoked', sessionsClosed: 1, payloadsDeactivated: 0, sessionsRemaining: [] });
  });

  it('a session the BMC will not close keeps the grant revoke-pending, naming it, until it is gone', async () => {
    const { id, bmc } = await serverWithSim({ acceptRisk: true, withSol: true });
    const g = (await grant(id)).json;
    // An interactive ipmitool: a plain (non-SOL) session, whose id no IPMI command tells.
    const shell = customer(bmc, g.username, g.password, 'shell');
    shell.type('power status\n');
    await until(async () => shell.output(), (o) => /Chassis Power is/.test(o), 10_000, 50);

    const res = await t.request({ method: 'DELETE', url: `/api/v1/console-grants/${g.id}` });
    expect(res.json).toMatchObject({ state: 'revoke-pending', revokeAttempts: 1 });
    expect(res.json.lastError).toMatch(/still lists session handle \d+/);
    expect(res.json.lastError).toMatch(/Close Session handle \d+: completion code 0x87/);
    // Why it must not say "revoked": ipmi_sim lets that session go on after the user is disabled.
    const before = (shell.output().match(/Chassis Power is/g) ?? []).length;
    shell.type('power status\n');
    await until(async () => (shell.output().match(/Chassis Power is/g) ?? []).length, (n) => n > before, 5_000, 50);
    expect(logsIn(bmc, g.username, g.password)).toBe(false);
    const audit = await t.request({ url: `/api/v1/audit?action=console-grant.revoke&targetId=${id}` });
    expect(audit.json.items[0].changes).toMatchObject({ state: 'revoke-pending', sessionsClosed: 0, sessionsRemaining: [expect.stringMatching(/^session handle/)] });

    // The customer quits; once the BMC lists the session no more, the next sweep finishes the revocation.
    shell.type('exit\n');
    await shell.stop();
    await until(async () => sessionsOf(bmc, g.slot), (h) => h.length === 0, 80_000, 1000);
    await t.request({ method: 'POST', url: '/api/v1/console-grants/reconcile' });
    expect((await t.request({ url: `/api/v1/console-grants/${g.id}` })).json).toMatchObject({ state: 'revoked', lastError: expect.stringMatching(/still lists/) });
    expect(slotName(bmc, g.slot)).toBe('');
  }, 150_000);
});

describe('a grant ending while racksmith runs', () => {
  it('is revoked by its own timer within 5 s of expiresAt, and the open SOL client ends', async () => {
    // What `serve` does in roles all and agent (the test app starts no schedules of its own).
    await t.app.get(ConsoleReconciler).start();
    const { id, bmc } = await serverWithSim({ acceptRisk: true, withSol: true });
    const g = (await grant(id, { customer: 'c-ttl', ttl: 60 })).json;
    const sol = await solOpen(bmc, g);
    const expiresAt = Date.parse(g.expiresAt);
    const rows = await until(
      () => query<{ state: string; revoked_at: Date | null; revoke_reason: string }>(t.db.url, 'SELECT state, revoked_at, revoke_reason FROM console_grants WHERE id = $1', [g.id]),
      (r) => r[0].state !== 'active',
      80_000,
      100,
    );
    expect(rows[0]).toMatchObject({ state: 'revoked', revoke_reason: 'expired' });
    const late = rows[0].revoked_at!.getTime() - expiresAt;
    expect(late).toBeGreaterThanOrEqual(0);
    expect(late).toBeLessThan(5_000);
    expect(sessionsOf(bmc, g.slot)).toEqual([]);
    await solEnded(bmc, sol, Date.now());
  }, 150_000);
});
