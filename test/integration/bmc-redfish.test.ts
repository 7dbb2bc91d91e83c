import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BmcError, type BmcTarget } from '../../src/drivers/bmc/bmc-driver';
import { RedfishBmcDriver } from '../../src/drivers/bmc/redfish.driver';
import WebSocket from 'ws';
import { BOOTSTRAP, startTestApp, type TestApp } from '../support/app';
import { freeUdpPort, startSimBmc, type SimBmc } from '../support/ipmi-sim';
import { until } from '../support/wait';
import { freePort } from '../support/cli';
import { startRedfishSim, type RedfishSim } from '../support/redfish-sim';

jest.setTimeout(60_000);

const sims: RedfishSim[] = [];
const drivers: RedfishBmcDriver[] = [];
afterAll(async () => {
  await Promise.all(drivers.map((d) => d.close()));
  await Promise.all(sims.map((s) => s.stop()));
});

async function sim(opts: Parameters<typeof startRedfishSim>[0] = {}): Promise<RedfishSim> {
  const s = await startRedfishSim(opts);
  sims.push(s);
  return s;
}
function driver(ca?: string): RedfishBmcDriver {
  const d = new RedfishBmcDriver({ timeoutSeconds: 1, retries: 1, verifyTls: true, ca });
  drivers.push(d);
  return d;
}
const target = (s: RedfishSim, password = s.password): BmcTarget => ({ serverId: 'srv', address: s.address, username: s.username, password });

describe('redfish driver against a scripted Redfish service', () => {
  it('power: status, on, on again sends nothing, cycle, soft-off, off of a stopped machine sends nothing', async () => {
    const s = await sim();
    const d = driver(s.ca);
    const t = target(s);
    expect(await d.powerStatus(t)).toBe('off');
    await d.power(t, 'off');
    await d.power(t, 'on');
    expect(s.state.power).toBe('On');
    await d.power(t, 'on');
    await d.power(t, 'cycle');
    await d.power(t, 'soft-off');
    expect(s.state.resets).toEqual(['On', 'PowerCycle', 'GracefulShutdown']);
    expect(await d.powerStatus(t)).toBe('off');
  });

  it('boot device: one-time PXE in UEFI mode, then disk for good, each PATCH sent with the ETag read', async () => {
    const s = await sim();
    const d = driver(s.ca);
    await d.setBootDevice(target(s), 'pxe', { once: true, uefi: true });
    expect(s.state.boot).toEqual({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once', BootSourceOverrideMode: 'UEFI' });
    await d.setBootDevice(target(s), 'disk', { once: false, uefi: false });
    expect(s.state.boot).toEqual({ BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous', BootSourceOverrideMode: 'Legacy' });
  });

  it('users: create an OPERATOR in a slot, it logs in as operator but not as administrator, its sessions are closed, delete frees the slot', async () => {
    const s = await sim();
    const d = driver(s.ca);
    const t = target(s);
    expect((await d.listUsers(t)).find((u) => u.slot === 2)).toEqual({ slot: 2, name: 'root', enabled: true, privilege: 'administrator' });
    await d.createUser(t, { slot: 10, name: 'rs-cust0001', password: 'Pw-0123456789abc', privilege: 'operator' });
    expect((await d.listUsers(t)).find((u) => u.slot === 10)).toEqual({ slot: 10, name: 'rs-cust0001', enabled: true, privilege: 'operator' });
    expect(await d.canLogin(t, 'rs-cust0001', 'Pw-0123456789abc', 'operator')).toBe(true);
    expect(await d.canLogin(t, 'rs-cust0001', 'Pw-0123456789abc', 'administrator')).toBe(false);
    expect(await d.canLogin(t, 'rs-cust0001', 'wrong-password', 'operator')).toBe(false);

    expect(await s.login('rs-cust0001', 'Pw-0123456789abc')).not.toBeNull();
    await s.login(s.username, s.password);
    expect(await d.endUserSessions(t, 10)).toEqual({ closed: 1, payloadsDeactivated: 0, remaining: [], refused: [] });
    expect([...s.sessions.values()].map((x) => x.user)).toEqual(['root']);

    await d.setUserEnabled(t, 10, false);
    expect(await s.login('rs-cust0001', 'Pw-0123456789abc')).toBeNull();
    await d.deleteUser(t, 10);
    expect(s.accounts.get(10)).toMatchObject({ UserName: '', Enabled: false, RoleId: 'None' });
    expect(s.accounts.get(10)!.Password).not.toBe('Pw-0123456789abc');
  });

  it('a BMC that lets an Operator do administrator things is seen as such', async () => {
    const s = await sim({ enforce: false });
    const d = driver(s.ca);
    await d.createUser(target(s), { slot: 11, name: 'rs-cust0002', password: 'Pw-0123456789abc', privilege: 'operator' });
    expect(await d.canLogin(target(s), 'rs-cust0002', 'Pw-0123456789abc', 'administrator')).toBe(true);
  });

  it('failures: untrusted certificate, wrong password, no serial console, an unreachable BMC within seconds', async () => {
    const s = await sim();
    await expect(driver().powerStatus(target(s))).rejects.toMatchObject({ kind: 'protocol', message: expect.stringContaining('RACKSMITH_REDFISH_CA') });
    await expect(driver(s.ca).powerStatus(target(s, 'wrong'))).rejects.toMatchObject({ kind: 'auth' });
    await expect(driver(s.ca).openSol(target(s))).rejects.toMatchObject({ kind: 'unsupported' });
    const port = await freePort();
    const started = Date.now();
    const err = await driver(s.ca).powerStatus({ serverId: 'x', address: `127.0.0.1:${port}`, username: 'root', password: 'x' }).catch((e: BmcError) => e);
    expect(err).toBeInstanceOf(BmcError);
    expect((err as BmcError).kind).toBe('unreachable');
    expect(Date.now() - started).toBeLessThan(5000);
    await expect(driver(s.ca).powerStatus({ serverId: 'x', address: 'http://10.1.2.3', username: 'root', password: 'x' })).rejects.toMatchObject({ kind: 'unsupported' });
  });
});

describe('redfish servers through the API', () => {
  let t: TestApp;
  let dir: string;
  let enforcing: RedfishSim;
  let lax: RedfishSim;
  let both: { redfish: RedfishSim; ipmi: SimBmc };
  let modelId: string;

  beforeAll(async () => {
    enforcing = await sim({ power: 'On' });
    lax = await sim({ enforce: false });
    // One BMC that speaks both: Redfish on TCP and IPMI (with SOL) on UDP, same address and port.
    const port = await freeUdpPort();
    const ipmi = await startSimBmc({ withSol: true, port });
    both = { ipmi, redfish: await sim({ port, username: ipmi.username, password: ipmi.password }) };
    dir = mkdtempSync(join(tmpdir(), 'racksmith-redfish-ca-'));
    writeFileSync(join(dir, 'ca.pem'), enforcing.ca + lax.ca + both.redfish.ca);
    t = await startTestApp({ RACKSMITH_POWER_SYNC_INTERVAL: '0', RACKSMITH_CONSOLE_RECONCILE_INTERVAL: '0', RACKSMITH_REDFISH_CA: join(dir, 'ca.pem') });
    await t.app.listen(0, '127.0.0.1');
    await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
    modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'Redfish', heightU: 1, bmcDriver: 'redfish' } })).json.id;
  });
  afterAll(async () => {
    await t?.close();
    await both?.ipmi.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function server(s: RedfishSim, name: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name, role: 'rented-server', modelId, bmc: { address: s.address, username: s.username, password: s.password, ...extra } } });
    expect(res.status).toBe(201);
    for (const to of ['available', 'reserved', 'deploying', 'active']) await t.request({ method: 'POST', url: `/api/v1/servers/${res.json.id}/transition`, body: { to } });
    return res.json.id;
  }

  it('power and a verified IPKVM grant on a BMC that enforces roles; revoke makes its login fail', async () => {
    const id = await server(enforcing, 'rf-1');
    expect((await t.request({ method: 'POST', url: `/api/v1/servers/${id}/power`, body: { action: 'reset' } })).json).toMatchObject({ powerState: 'on' });
    expect(enforcing.state.resets).toEqual(['ForceRestart']);

    const res = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/console-grants`, body: { customer: 'cust-rf', ttl: 3600 } });
    expect(res.status).toBe(201);
    const g = res.json;
    expect(g).toMatchObject({ state: 'active', slot: 10, riskAccepted: false });
    expect(enforcing.accounts.get(10)).toMatchObject({ UserName: g.username, RoleId: 'Operator', Enabled: true });
    expect(await enforcing.login(g.username, g.password)).not.toBeNull();
    expect((await t.request({ url: `/api/v1/servers/${id}/power` })).json.privilegeCheck).toBe('enforced');

    await t.request({ method: 'DELETE', url: `/api/v1/console-grants/${g.id}` });
    expect(await enforcing.login(g.username, g.password)).toBeNull();
    expect(enforcing.accounts.get(10)).toMatchObject({ UserName: '', Enabled: false });
    // The customer's open session went with the account.
    expect([...enforcing.sessions.values()].filter((s) => s.user === g.username)).toEqual([]);
  });

  it('a BMC that does not enforce roles: the grant is refused as privilege-unsafe and no account is left', async () => {
    const id = await server(lax, 'rf-2');
    const res = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/console-grants`, body: { customer: 'cust-rf', ttl: 3600 } });
    expect(res.status).toBe(409);
    expect(res.json.error.code).toBe('bmc_privilege_unsafe');
    expect([...lax.accounts.values()].filter((a) => a.UserName.startsWith('rs-'))).toEqual([]);
  });

  it('per capability: power through Redfish, the serial console through IPMI SOL on the same BMC', async () => {
    const id = await server(both.redfish, 'rf-3', { consoleDriver: 'ipmitool' });
    expect((await t.request({ url: `/api/v1/devices/${id}` })).json.bmc).toMatchObject({ driver: 'redfish', consoleDriver: 'ipmitool' });
    await t.request({ method: 'POST', url: `/api/v1/servers/${id}/power`, body: { action: 'on' } });
    expect(both.redfish.state.resets).toEqual(['On']);
    expect(both.ipmi.chassisLog()).toEqual([]);

    const port = (t.app.getHttpServer().address() as { port: number }).port;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v1/console/ws`);
    let text = '';
    ws.on('message', (data: Buffer, binary: boolean) => { if (binary) text += data.toString('utf8'); });
    await new Promise<void>((resolve, reject) => { ws.on('open', () => resolve()); ws.on('error', reject); });
    ws.send(JSON.stringify({ server: id, apiToken: BOOTSTRAP }));
    await until(async () => both.ipmi.serial.connected(), (c) => c);
    await new Promise((r) => setTimeout(r, 500));
    both.ipmi.serial.write('rf-3 login: ');
    await until(async () => text, (s) => s.includes('rf-3 login: '));
    ws.send(Buffer.from('root\r'));
    await until(async () => both.ipmi.serial.received(), (r) => r.includes('root\r'));
    const closed = new Promise((r) => ws.on('close', r));
    ws.close();
    await closed;
  });
});
