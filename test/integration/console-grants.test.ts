import { SECRET_KEY, startTestApp, type TestApp } from '../support/app';
import { startServe, type Served } from '../support/cli';
import { query } from '../support/db';
import { ipmitoolAs, startSimBmc, type SimBmc } from '../support/ipmi-sim';
import { until } from '../support/wait';

jest.setTimeout(90_000);

let t: TestApp;
const sims: SimBmc[] = [];
let modelId: string;
let n = 0;

beforeAll(async () => {
  // Two grant slots, so "no free slot" is quick to reach.
  t = await startTestApp({ RACKSMITH_POWER_SYNC_INTERVAL: '0', RACKSMITH_CONSOLE_SLOTS: '10-11' });
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
  modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'IPMI', heightU: 1, bmcDriver: 'ipmitool' } })).json.id;
});
afterAll(async () => {
  await Promise.all(sims.map((s) => s.stop()));
  await t?.close();
});

async function serverWithSim(opts: { acceptRisk?: boolean } = {}): Promise<{ id: string; bmc: SimBmc }> {
  const bmc = await startSimBmc();
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
const grant = (id: string, body: unknown = { customer: 'cust-1', ttl: 3600 }) => t.request({ method: 'POST', url: `/api/v1/servers/${id}/console-grants`, body });

describe('IPKVM grants on ipmi_sim', () => {
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
  afterAll(async () => served?.stop('SIGTERM'));

  it('is revoked at the next start', async () => {
    const { id, bmc } = await serverWithSim({ acceptRisk: true });
    const g = (await grant(id, { customer: 'c-stop', ttl: 600 })).json;
    expect(logsIn(bmc, g.username, g.password)).toBe(true);
    // Time passes with no racksmith running: the grant is over.
    await query(t.db.url, "UPDATE console_grants SET expires_at = now() - interval '1 minute' WHERE id = $1", [g.id]);
    served = await startServe({ DATABASE_URL: t.db.url, RACKSMITH_SECRET_KEY: SECRET_KEY, RACKSMITH_INVENTORY_SEED: '', RACKSMITH_CONSOLE_SLOTS: '10-11', RACKSMITH_POWER_SYNC_INTERVAL: '0', RACKSMITH_CONSOLE_RECONCILE_INTERVAL: '0' });
    await until(() => query<{ state: string }>(t.db.url, 'SELECT state FROM console_grants WHERE id = $1', [g.id]), (r) => r[0].state === 'revoked', 20_000, 100);
    expect(logsIn(bmc, g.username, g.password)).toBe(false);
  });
});
