import { startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';
import { freeUdpPort, startSimBmc, type SimBmc } from '../support/ipmi-sim';
import { IpmipowerStatusReader } from '../../src/drivers/bmc/ipmipower';

jest.setTimeout(60_000);

let t: TestApp;
let sims: SimBmc[] = [];
let modelId: string;
let n = 0;

beforeAll(async () => {
  // ipmi_sim answers an RMCP+ Open Session with a privilege FreeIPMI rejects unless told (LAB.md).
  t = await startTestApp({ RACKSMITH_POWER_SYNC_INTERVAL: '0', RACKSMITH_IPMIPOWER_WORKAROUNDS: 'opensesspriv' });
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
  modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'IPMI', heightU: 1, bmcDriver: 'ipmitool' } })).json.id;
});
afterAll(async () => {
  await Promise.all(sims.map((s) => s.stop()));
  await t?.close();
});

async function server(bmc: { address: string; username: string; password: string }, state = 'active'): Promise<string> {
  const id = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: `pw-${++n}`, role: 'rented-server', modelId, bmc: { address: bmc.address, username: bmc.username, password: bmc.password } } })).json.id;
  for (const to of ['available', 'reserved', 'deploying', 'active', ...(state === 'suspended' ? ['suspended'] : [])]) {
    await t.request({ method: 'POST', url: `/api/v1/servers/${id}/transition`, body: { to } });
  }
  return id;
}

async function sim(power: 'on' | 'off' = 'off', host?: string): Promise<SimBmc> {
  const s = await startSimBmc({ initialPower: power, host });
  sims.push(s);
  return s;
}

describe('power through ipmitool and ipmi_sim', () => {
  it('power on/off changes the simulated chassis, is audited, and on of a running server does not cycle it', async () => {
    const bmc = await sim('off');
    const id = await server(bmc);
    const on = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/power`, body: { action: 'on' } });
    expect(on.status).toBe(200);
    expect(on.json).toMatchObject({ powerState: 'on', reachable: true });
    expect(bmc.power()).toBe('on');
    const sets = bmc.chassisLog().length;
    expect((await t.request({ method: 'POST', url: `/api/v1/servers/${id}/power`, body: { action: 'on' } })).json.powerState).toBe('on');
    expect(bmc.chassisLog().length).toBe(sets);
    expect((await t.request({ method: 'POST', url: `/api/v1/servers/${id}/power`, body: { action: 'off' } })).json.powerState).toBe('off');
    expect(bmc.power()).toBe('off');

    const view = await t.request({ method: 'GET', url: `/api/v1/servers/${id}/power` });
    expect(view.json.events.map((e: { kind: string; action: string }) => `${e.kind}:${e.action}`)).toEqual(['action:off', 'action:on', 'action:on']);
    const audit = await t.request({ method: 'GET', url: `/api/v1/audit?action=server.power&targetId=${id}` });
    expect(audit.json.items.length).toBe(3);
  });

  it('bad input: unknown server 404, bad action 400 naming the field, no BMC 409', async () => {
    expect((await t.request({ method: 'POST', url: '/api/v1/servers/00000000-0000-4000-8000-000000000000/power', body: { action: 'on' } })).status).toBe(404);
    const bad = await t.request({ method: 'POST', url: `/api/v1/servers/00000000-0000-4000-8000-000000000000/power`, body: { action: 'explode' } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.field).toBe('action');
    const bare = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: `pw-${++n}`, role: 'rented-server', modelId } })).json.id;
    const none = await t.request({ method: 'POST', url: `/api/v1/servers/${bare}/power`, body: { action: 'on' } });
    expect(none.status).toBe(409);
    expect(none.json.error.code).toBe('no_bmc');
  });

  it('an unreachable BMC gives a 502 naming it within seconds', async () => {
    const port = await freeUdpPort();
    const id = await server({ address: `127.0.0.1:${port}`, username: 'admin', password: 'x' });
    const started = Date.now();
    const res = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/power`, body: { action: 'on' } });
    expect(res.status).toBe(502);
    expect(res.json.error.code).toBe('bmc_unreachable');
    expect(res.json.error.message).toContain(`127.0.0.1:${port}`);
    expect(Date.now() - started).toBeLessThan(8000);
  });

  it('the sync records states and changes, flags drift and marks unreachable BMCs, then their recovery', async () => {
    await query(t.db.url, 'DELETE FROM devices');
    // Hosts of their own, as real BMCs have: ipmipower names its answers by host only.
    const a = await sim('on', '127.0.0.21');
    const b = await sim('off', '127.0.0.22');
    const c = await sim('on', '127.0.0.23');
    const ia = await server(a);
    const ib = await server(b);
    const ic = await server(c, 'suspended');
    const port = await freeUdpPort();
    const id = await server({ address: `127.0.0.1:${port}`, username: 'admin', password: 'x' });

    const first = await t.request({ method: 'POST', url: '/api/v1/power/sync' });
    expect(first.json).toMatchObject({ checked: 4, on: 2, off: 1, unreachable: 1, changed: 0, drift: 1 });
    expect((await t.request({ method: 'GET', url: `/api/v1/servers/${ic}/power` })).json).toMatchObject({ powerState: 'on', drift: 'on while suspended' });
    const dead = (await t.request({ method: 'GET', url: `/api/v1/servers/${id}/power` })).json;
    expect(dead).toMatchObject({ reachable: false, powerState: null });
    expect(dead.error).toContain(`127.0.0.1:${port}`);

    b.setPower('on');
    a.setPower('off');
    // The dead one never answered with its credentials: the next syncs leave it out.
    const second = await t.request({ method: 'POST', url: '/api/v1/power/sync' });
    expect(second.json).toMatchObject({ checked: 3, changed: 2, unreachable: 0, skipped: 1 });
    const ev = (await t.request({ method: 'GET', url: `/api/v1/servers/${ib}/power` })).json.events;
    expect(ev[0]).toMatchObject({ kind: 'changed', from: 'off', to: 'on', actor: 'power-sync' });
    expect((await t.request({ method: 'GET', url: `/api/v1/servers/${ia}/power` })).json.powerState).toBe('off');
    // One "unreachable" event, not one per sync.
    const deadEvents = (await t.request({ method: 'GET', url: `/api/v1/servers/${id}/power` })).json.events;
    expect(deadEvents.filter((e: { kind: string }) => e.kind === 'unreachable')).toHaveLength(1);

    const metrics = await t.request({ method: 'GET', url: '/metrics' });
    expect(metrics.text).toMatch(/racksmith_bmcs\{[^}]*state="unreachable"[^}]*\} 1/);
    expect(metrics.text).toMatch(/racksmith_power_sync_duration_seconds_count\{[^}]*\} 2/);
  });

  it('a BMC on a port of its own (bmc.port): power actions and the sync reach it there; a port given twice or out of range is a 400 naming bmc.port', async () => {
    const s = await sim('off', '127.0.0.31');
    const port = Number(s.address.split(':')[1]);
    const created = await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: `pw-${++n}`, role: 'rented-server', modelId, bmc: { address: '127.0.0.31', port, username: s.username, password: s.password } } });
    expect(created.status).toBe(201);
    expect(created.json.bmc).toMatchObject({ address: '127.0.0.31', port, passwordSet: true });
    const id = created.json.id;
    for (const to of ['available', 'reserved', 'deploying', 'active']) await t.request({ method: 'POST', url: `/api/v1/servers/${id}/transition`, body: { to } });
    expect((await t.request({ method: 'POST', url: `/api/v1/servers/${id}/power`, body: { action: 'on' } })).json).toMatchObject({ powerState: 'on' });
    expect(s.power()).toBe('on');
    s.setPower('off');
    expect((await t.request({ method: 'POST', url: '/api/v1/power/sync' })).status).toBe(200);
    expect((await t.request({ url: `/api/v1/servers/${id}/power` })).json.powerState).toBe('off');

    for (const bmc of [{ address: '127.0.0.31', port: 0 }, { address: '127.0.0.31', port: 70000 }, { address: '127.0.0.31:623', port: 624 }, { address: '[::1]:623', port: 624 }]) {
      const bad = await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: 'pw-bad', role: 'rented-server', modelId, bmc: { ...bmc, username: 'admin' } } });
      expect({ bmc, status: bad.status, field: bad.json.error.field }).toEqual({ bmc, status: 400, field: 'bmc.port' });
    }
    expect(await query(t.db.url, "SELECT 1 FROM devices WHERE name = 'pw-bad'")).toEqual([]);
  });

  it('the sync leaves out BMCs nobody checked: none without a password is asked, one that never answered is tried once and again only after its credentials change; /health names them', async () => {
    await query(t.db.url, 'DELETE FROM devices');
    // The shipped inventory's case: an address and a user, no password.
    const unset = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: 'pw-unset', role: 'rented-server', modelId, bmc: { address: '127.0.0.51', username: 'admin' } } })).json.id;
    const deadPort = await freeUdpPort();
    const dead = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: 'pw-dead', role: 'rented-server', modelId, bmc: { address: '127.0.0.1', port: deadPort, username: 'admin', password: 'x' } } })).json.id;
    const live = await sim('on', '127.0.0.52');
    const good = await server(live);

    const first = (await t.request({ method: 'POST', url: '/api/v1/power/sync' })).json;
    expect(first).toMatchObject({ checked: 2, on: 1, unreachable: 1, skipped: 1 });
    expect(await query(t.db.url, 'SELECT device_id FROM bmc_status WHERE device_id = $1', [unset])).toEqual([]);
    const deadSeen = (await query<{ checked_at: Date }>(t.db.url, 'SELECT checked_at FROM bmc_status WHERE device_id = $1', [dead]))[0]!.checked_at;

    const second = (await t.request({ method: 'POST', url: '/api/v1/power/sync' })).json;
    expect(second).toMatchObject({ checked: 1, on: 1, unreachable: 0, skipped: 2 });
    expect((await query<{ checked_at: Date }>(t.db.url, 'SELECT checked_at FROM bmc_status WHERE device_id = $1', [dead]))[0]!.checked_at).toEqual(deadSeen);
    expect((await query(t.db.url, 'SELECT device_id FROM bmc_status WHERE device_id = $1', [unset]))).toEqual([]);
    const health = (await t.request({ url: '/health', token: '' })).json.checks.powerSync;
    expect(health).toEqual({ status: 'ok', detail: 'leaves out 2 BMC(s) nobody checked: pw-dead: never answered, pw-unset: no password' });

    // New credentials: tried again by the next sync; a password for the unset one: asked too.
    const simDead = await sim('off', '127.0.0.53');
    expect((await t.request({ method: 'PATCH', url: `/api/v1/devices/${dead}`, body: { bmc: { address: '127.0.0.53', port: Number(simDead.address.split(':')[1]), username: simDead.username, password: simDead.password } } })).status).toBe(200);
    const third = (await t.request({ method: 'POST', url: '/api/v1/power/sync' })).json;
    expect(third).toMatchObject({ checked: 2, on: 1, off: 1, unreachable: 0, skipped: 1 });
    expect((await t.request({ url: `/api/v1/servers/${dead}/power` })).json).toMatchObject({ reachable: true, powerState: 'off' });
    expect(good).toBeDefined();
  });

  it('ipmipower reads a BMC with no password beside others in one pass (an empty password line once failed the whole read)', async () => {
    const a = await sim('on', '127.0.0.41');
    const open = await startSimBmc({ initialPower: 'off', host: '127.0.0.42', password: '' });
    sims.push(open);
    const reader = new IpmipowerStatusReader({ program: 'ipmipower', cipherSuite: 3, timeoutSeconds: 2, retries: 1, workarounds: 'opensesspriv', fanout: 16 });
    const readings = await reader.read([
      { serverId: 'a', address: a.address, username: a.username, password: a.password },
      { serverId: 'open', address: open.address, username: open.username, password: null },
    ]);
    expect(Object.fromEntries(readings)).toEqual({ a: 'on', open: 'off' });
  });

  it('the sync reads the BMCs through ipmipower: without the workaround ipmi_sim refuses it, and that is what the sync records', async () => {
    await query(t.db.url, 'DELETE FROM devices');
    const a = await sim('on', '127.0.0.31');
    const b = await sim('off', '127.0.0.32');
    const strict = await startTestApp({ RACKSMITH_POWER_SYNC_INTERVAL: '0', RACKSMITH_IPMIPOWER_WORKAROUNDS: '', RACKSMITH_INVENTORY_SEED: '' });
    const plain = await startTestApp({ RACKSMITH_POWER_SYNC_INTERVAL: '0', RACKSMITH_IPMIPOWER: '', RACKSMITH_INVENTORY_SEED: '' });
    try {
      for (const app of [strict, plain]) {
        await app.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
        const model = (await app.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'IPMI', heightU: 1, bmcDriver: 'ipmitool' } })).json.id;
        for (const [i, s] of [a, b].entries()) {
          await app.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: `bulk-${i}`, role: 'rented-server', modelId: model, bmc: { address: s.address, username: s.username, password: s.password } } });
        }
      }
      const refused = await strict.request({ method: 'POST', url: '/api/v1/power/sync' });
      expect(refused.json).toMatchObject({ checked: 2, unreachable: 2 });
      const list = await query<{ error: string }>(strict.db.url, 'SELECT error FROM bmc_status');
      expect(list.map((r) => r.error)).toEqual([expect.stringContaining('privilege level cannot be obtained'), expect.stringContaining('privilege level cannot be obtained')]);

      // RACKSMITH_IPMIPOWER="": one ipmitool run per BMC, which ipmi_sim answers.
      expect((await plain.request({ method: 'POST', url: '/api/v1/power/sync' })).json).toMatchObject({ checked: 2, on: 1, off: 1, unreachable: 0 });
    } finally {
      await strict.close();
      await plain.close();
    }
  });
});
