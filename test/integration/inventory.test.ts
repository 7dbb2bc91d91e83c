import { startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';
import { DevicesService } from '../../src/modules/inventory/devices.service';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t?.close());

async function post(url: string, body: unknown, expected = 201) {
  const res = await t.request({ method: 'POST', url: `/api/v1${url}`, body });
  if (res.status !== expected) throw new Error(`POST ${url} → ${res.status} ${res.text}`);
  return res.json;
}

let seq = 0;
const uniq = (p: string) => `${p}-${++seq}`;

async function site(code = uniq('site')) {
  return post('/sites', { code, name: `Site ${code}` });
}
async function rack(siteCode: string, extra: Record<string, unknown> = {}) {
  return post('/racks', { site: siteCode, name: uniq('R'), ...extra });
}
async function model(extra: Record<string, unknown> = {}) {
  return post('/hardware-models', { vendor: 'Dell', model: uniq('R'), heightU: 1, maxDrawW: 800, typicalDrawW: 300, ...extra });
}
function device(siteCode: string, modelId: string, extra: Record<string, unknown> = {}) {
  return t.request({ method: 'POST', url: '/api/v1/devices', body: { site: siteCode, name: uniq('srv'), role: 'rented-server', modelId, ...extra } });
}

describe('sites and racks', () => {
  it('creates, finds by code, updates, and refuses duplicates and bad codes with the field', async () => {
    const s = await site('baltic');
    expect(s).toMatchObject({ code: 'baltic', timezone: 'Europe/Moscow', visitHours: { opens: '09:00', closes: '21:00' } });
    expect((await t.request({ url: '/api/v1/sites/baltic' })).json.id).toBe(s.id);
    const patched = await t.request({ method: 'PATCH', url: '/api/v1/sites/baltic', body: { visitHours: { opens: '08:00', closes: '22:00' } } });
    expect(patched.json.visitHours).toEqual({ opens: '08:00', closes: '22:00' });
    const dup = await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'baltic', name: 'again' } });
    expect(dup.status).toBe(409);
    expect(dup.json.error).toMatchObject({ code: 'site_code_taken', field: 'code' });
    const bad = await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'Baltic DC', name: 'x' } });
    expect(bad.json.error).toMatchObject({ code: 'validation_failed', field: 'code' });
    const hours = await t.request({ method: 'PATCH', url: '/api/v1/sites/baltic', body: { visitHours: { opens: '22:00', closes: '08:00' } } });
    expect(hours.json.error).toMatchObject({ code: 'validation_failed', field: 'visitHours' });
  });

  it('names the missing site, keeps rack names unique per site, and will not delete a site in use', async () => {
    const missing = await t.request({ method: 'POST', url: '/api/v1/racks', body: { site: 'atlantis', name: 'A01' } });
    expect(missing.status).toBe(400);
    expect(missing.json.error).toEqual({ code: 'reference_not_found', message: 'site atlantis does not exist', field: 'site' });
    const s = await site();
    await post('/racks', { site: s.code, name: 'A01' });
    const dup = await t.request({ method: 'POST', url: '/api/v1/racks', body: { site: s.code, name: 'A01' } });
    expect(dup.json.error).toMatchObject({ code: 'rack_name_taken', field: 'name' });
    const del = await t.request({ method: 'DELETE', url: `/api/v1/sites/${s.code}` });
    expect(del.status).toBe(409);
    expect(del.json.error.code).toBe('in_use');
  });

  it('lists racks of a site in name order, a page at a time', async () => {
    const s = await site();
    for (const name of ['B02', 'A01', 'C03', 'A02']) await post('/racks', { site: s.code, name });
    const first = await t.request({ url: `/api/v1/racks?site=${s.code}&limit=3` });
    expect(first.json.items.map((r: { name: string }) => r.name)).toEqual(['A01', 'A02', 'B02']);
    const second = await t.request({ url: `/api/v1/racks?site=${s.code}&limit=3&cursor=${first.json.nextCursor}` });
    expect(second.json).toMatchObject({ items: [{ name: 'C03' }], nextCursor: null });
  });
});

describe('rack units', () => {
  let s: { code: string };
  let r: { id: string };
  let oneU: { id: string };
  let halfDepth: { id: string };
  let twoU: { id: string };
  beforeAll(async () => {
    s = await site();
    r = await rack(s.code, { heightU: 42 });
    oneU = await model();
    halfDepth = await model({ fullDepth: false });
    twoU = await model({ heightU: 2 });
  });

  it('refuses a taken unit, naming who holds it, and lets half-depth devices share front and rear', async () => {
    const a = await device(s.code, twoU.id, { placement: { rack: r.id, position: 10, face: 'front' } });
    expect(a.status).toBe(201);
    const clash = await device(s.code, oneU.id, { placement: { rack: r.id, position: 11, face: 'rear' } });
    expect(clash.status).toBe(409);
    expect(clash.json.error).toMatchObject({ code: 'rack_units_taken', field: 'placement.position' });
    expect(clash.json.error.details.occupiedBy).toEqual([expect.objectContaining({ id: a.json.id, position: 10, heightU: 2 })]);
    expect(clash.json.error.message).toContain(a.json.name);
    expect((await device(s.code, halfDepth.id, { placement: { rack: r.id, position: 20, face: 'front' } })).status).toBe(201);
    expect((await device(s.code, halfDepth.id, { placement: { rack: r.id, position: 20, face: 'rear' } })).status).toBe(201);
    expect((await device(s.code, halfDepth.id, { placement: { rack: r.id, position: 20, face: 'rear' } })).status).toBe(409);
    expect((await device(s.code, oneU.id, { placement: { rack: r.id, position: 20, face: 'front' } })).status).toBe(409);
  });

  it('keeps a device inside its rack and a rack from shrinking under its devices', async () => {
    const top = await device(s.code, twoU.id, { placement: { rack: r.id, position: 42, face: 'front' } });
    expect(top.status).toBe(409);
    expect(top.json.error).toMatchObject({ code: 'does_not_fit', details: { position: 42, heightU: 2, rackHeightU: 42 } });
    expect((await device(s.code, twoU.id, { placement: { rack: r.id, position: 41, face: 'front' } })).status).toBe(201);
    const shrink = await t.request({ method: 'PATCH', url: `/api/v1/racks/${r.id}`, body: { heightU: 40 } });
    expect(shrink.status).toBe(409);
    expect(shrink.json.error).toMatchObject({ code: 'does_not_fit', details: { rackHeightU: 40, highestUsedUnit: 42 } });
  });

  it('refuses a rack of another site', async () => {
    const other = await site();
    const otherRack = await rack(other.code);
    const res = await device(s.code, oneU.id, { placement: { rack: otherRack.id, position: 1, face: 'front' } });
    expect(res.status).toBe(400);
    expect(res.json.error.field).toBe('placement.rack');
  });

  it('lets exactly one of 20 concurrent placements into one unit win', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => device(s.code, oneU.id, { placement: { rack: r.id, position: 30, face: 'front' } })));
    expect(results.filter((x) => x.status === 201)).toHaveLength(1);
    const losers = results.filter((x) => x.status !== 201);
    expect(losers).toHaveLength(19);
    for (const l of losers) expect(l.json.error.code).toBe('rack_units_taken');
    expect(await query(t.db.url, 'SELECT count(*)::int AS n FROM devices WHERE rack_id = $1 AND units && int4range(30, 31)', [r.id])).toEqual([{ n: 1 }]);
  });

  it('moves and unracks a device through PATCH', async () => {
    const d = await device(s.code, oneU.id, { placement: { rack: r.id, position: 1, face: 'front' } });
    const moved = await t.request({ method: 'PATCH', url: `/api/v1/devices/${d.json.id}`, body: { placement: { rack: r.id, position: 2, face: 'rear' } } });
    expect(moved.json.placement).toMatchObject({ position: 2, face: 'rear' });
    const off = await t.request({ method: 'PATCH', url: `/api/v1/devices/${d.json.id}`, body: { placement: null } });
    expect(off.json.placement).toBeNull();
    const onto = await t.request({ method: 'PATCH', url: `/api/v1/devices/${d.json.id}`, body: { placement: { rack: r.id, position: 10, face: 'front' } } });
    expect(onto.status).toBe(409);
    expect(onto.json.error.code).toBe('rack_units_taken');
  });
});

describe('device identity', () => {
  let s: { code: string };
  let m: { id: string };
  beforeAll(async () => {
    s = await site();
    m = await model();
  });

  it('keeps MACs (in any notation), serials and asset tags unique, naming the value', async () => {
    const a = await device(s.code, m.id, { serial: 'CZ1234', assetTag: 'BAL-0001', nics: [{ name: 'eth0', mac: '52:54:00:00:00:01', pxe: true }] });
    expect(a.status).toBe(201);
    const mac = await device(s.code, m.id, { nics: [{ name: 'eth0', mac: '52-54-00-00-00-01' }] });
    expect(mac.json.error).toMatchObject({ code: 'mac_taken', field: 'nics', details: { mac: '52:54:00:00:00:01' } });
    const serial = await device(s.code, m.id, { serial: 'cz1234' });
    expect(serial.json.error).toMatchObject({ code: 'serial_taken', field: 'serial' });
    const tag = await device(s.code, m.id, { assetTag: 'bal-0001' });
    expect(tag.json.error).toMatchObject({ code: 'asset_tag_taken', field: 'assetTag' });
    const badMac = await device(s.code, m.id, { nics: [{ name: 'eth0', mac: '52:54:00:00:00' }] });
    expect(badMac.json.error).toMatchObject({ code: 'validation_failed', field: 'nics.0.mac' });
    const twice = await device(s.code, m.id, { nics: [{ name: 'eth0', mac: '52:54:00:00:00:09' }, { name: 'eth1', mac: '525400000009' }] });
    expect(twice.json.error).toMatchObject({ code: 'validation_failed', field: 'nics.1.mac' });
  });

  it('writes nothing when a later part of a create fails', async () => {
    await device(s.code, m.id, { nics: [{ name: 'eth0', mac: '52:54:00:00:01:01' }] });
    const before = await query(t.db.url, 'SELECT (SELECT count(*) FROM devices)::int AS d, (SELECT count(*) FROM nics)::int AS n, (SELECT count(*) FROM audit_events)::int AS a');
    const res = await device(s.code, m.id, { name: 'half-made', nics: [{ name: 'eth0', mac: '52:54:00:00:01:02' }, { name: 'eth1', mac: '52:54:00:00:01:01' }] });
    expect(res.status).toBe(409);
    expect(await query(t.db.url, 'SELECT (SELECT count(*) FROM devices)::int AS d, (SELECT count(*) FROM nics)::int AS n, (SELECT count(*) FROM audit_events)::int AS a')).toEqual(before);
  });

  it('finds devices by MAC, serial, asset tag, customer and free text', async () => {
    const d = await device(s.code, m.id, { name: 'cust-box', role: 'colocation', customerId: 'C-7781', serial: 'FIND-ME-9', assetTag: 'EZ-0042', nics: [{ name: 'eno1', mac: 'aa:bb:cc:00:11:22' }] });
    expect(d.status).toBe(201);
    const ids = async (qs: string) => (await t.request({ url: `/api/v1/devices?${qs}` })).json.items.map((x: { id: string }) => x.id);
    expect(await ids('mac=AA-BB-CC-00-11-22')).toEqual([d.json.id]);
    expect(await ids('serial=find-me-9')).toEqual([d.json.id]);
    expect(await ids('assetTag=EZ-0042')).toEqual([d.json.id]);
    expect(await ids('customer=C-7781')).toEqual([d.json.id]);
    expect(await ids('q=aabb.cc00.1122')).toEqual([d.json.id]);
    expect(await ids('q=ME-9')).toEqual([d.json.id]);
    expect(await ids(`q=${encodeURIComponent('%')}`)).toEqual([]);
    expect(await ids('role=colocation&site=' + s.code)).toEqual([d.json.id]);
  });

  it('needs an owner for colocation equipment', async () => {
    const res = await device(s.code, m.id, { role: 'colocation' });
    expect(res.json.error).toMatchObject({ code: 'validation_failed', field: 'customerId' });
  });

  it('stores BMC credentials encrypted and never returns the password', async () => {
    const d = await device(s.code, m.id, { bmc: { address: '127.0.0.2', username: 'admin', password: 'calvin-secret' } });
    expect(d.json.bmc).toEqual({ address: '127.0.0.2', port: null, driver: null, consoleDriver: null, username: 'admin', passwordSet: true, passwordRef: null, acceptPrivilegeRisk: false });
    const got = await t.request({ url: `/api/v1/devices/${d.json.id}` });
    expect(got.text).not.toContain('calvin-secret');
    const list = await t.request({ url: '/api/v1/devices?limit=500' });
    expect(list.text).not.toContain('calvin-secret');
    const [row] = await query<{ bmc_password_enc: string }>(t.db.url, 'SELECT bmc_password_enc FROM devices WHERE id = $1', [d.json.id]);
    expect(row.bmc_password_enc).not.toContain('calvin');
    expect(await t.app.get(DevicesService).bmcPassword(d.json.id)).toBe('calvin-secret');
    const audit = await query(t.db.url, "SELECT changes::text AS c FROM audit_events WHERE target_id = $1", [d.json.id]);
    expect(JSON.stringify(audit)).not.toContain('calvin-secret');
  });
});

describe('power budgets', () => {
  let s: { code: string };
  let m: { id: string };
  let feed: { id: string; budgetW: number };
  let pdu: { id: string };
  beforeAll(async () => {
    s = await site();
    m = await model({ maxDrawW: 1000, typicalDrawW: 400 });
    const panel = await post('/power-panels', { site: s.code, name: 'P1' });
    feed = await post('/power-feeds', { panelId: panel.id, name: 'F-A', voltage: 230, amperage: 16, maxUtilizationPct: 80 });
    pdu = await post('/pdus', { feedId: feed.id, name: 'PDU-A' });
  });

  it('computes a feed budget from voltage, amperage, phase and utilisation', () => {
    expect(feed.budgetW).toBe(Math.floor(230 * 16 * 0.8));
  });

  it('refuses an allocation over the feed budget with the numbers, and one over a rack budget', async () => {
    const r = await rack(s.code);
    const a = (await device(s.code, m.id, { placement: { rack: r.id, position: 1, face: 'front' } })).json;
    const b = (await device(s.code, m.id, { placement: { rack: r.id, position: 2, face: 'front' } })).json;
    const c = (await device(s.code, m.id)).json;
    const d = (await device(s.code, m.id)).json;
    await post('/power-connections', { deviceId: a.id, pduId: pdu.id, allocatedW: 1000 });
    await post('/power-connections', { deviceId: b.id, pduId: pdu.id, allocatedW: 1000 });
    const over = await t.request({ method: 'POST', url: '/api/v1/power-connections', body: { deviceId: c.id, pduId: pdu.id, allocatedW: 1000 } });
    expect(over.status).toBe(409);
    expect(over.json.error).toMatchObject({ code: 'power_budget_exceeded', details: { scope: 'feed', budgetW: 2944, allocatedW: 2000, requestedW: 1000 } });
    expect((await t.request({ method: 'POST', url: '/api/v1/power-connections', body: { deviceId: c.id, pduId: pdu.id, allocatedW: 944 } })).status).toBe(201);

    // The rack's own budget: 2000 W allocated in it; lowering it below that is refused too.
    const lower = await t.request({ method: 'PATCH', url: `/api/v1/racks/${r.id}`, body: { powerBudgetW: 1500 } });
    expect(lower.json.error).toMatchObject({ code: 'power_budget_exceeded', details: { scope: 'rack', budgetW: 1500, allocatedW: 2000 } });
    await t.request({ method: 'PATCH', url: `/api/v1/racks/${r.id}`, body: { powerBudgetW: 2000 } });
    const panel2 = await post('/power-panels', { site: s.code, name: uniq('P') });
    const feed2 = await post('/power-feeds', { panelId: panel2.id, name: 'F-B', amperage: 32 });
    const pdu2 = await post('/pdus', { feedId: feed2.id, name: 'PDU-B' });
    const rackOver = await t.request({ method: 'POST', url: '/api/v1/power-connections', body: { deviceId: a.id, pduId: pdu2.id, allocatedW: 1 } });
    expect(rackOver.json.error).toMatchObject({ code: 'power_budget_exceeded', details: { scope: 'rack', budgetW: 2000, allocatedW: 2000, requestedW: 1 } });
    // A device with allocations moved into a full rack: refused the same way.
    const move = await t.request({ method: 'PATCH', url: `/api/v1/devices/${d.id}`, body: { placement: { rack: r.id, position: 5, face: 'front' } } });
    expect(move.status).toBe(200);
    await post('/power-connections', { deviceId: (await device(s.code, m.id)).json.id, pduId: pdu2.id, allocatedW: 10 });
    const e = (await device(s.code, m.id)).json;
    await post('/power-connections', { deviceId: e.id, pduId: pdu2.id, allocatedW: 10 });
    const moveOver = await t.request({ method: 'PATCH', url: `/api/v1/devices/${e.id}`, body: { placement: { rack: r.id, position: 6, face: 'front' } } });
    expect(moveOver.json.error).toMatchObject({ code: 'power_budget_exceeded', details: { scope: 'rack' } });
  });

  it('refuses an allocation above the maximum draw', async () => {
    const d = (await device(s.code, m.id)).json;
    const res = await t.request({ method: 'POST', url: '/api/v1/power-connections', body: { deviceId: d.id, pduId: pdu.id, allocatedW: 1001 } });
    expect(res.json.error).toMatchObject({ code: 'validation_failed', field: 'allocatedW' });
  });

  it('never exceeds a budget under 20 concurrent allocations', async () => {
    const panel = await post('/power-panels', { site: s.code, name: uniq('P') });
    const f = await post('/power-feeds', { panelId: panel.id, name: 'F-C', voltage: 230, amperage: 16, maxUtilizationPct: 80 });
    const p = await post('/pdus', { feedId: f.id, name: 'PDU-C' });
    const devices = await Promise.all(Array.from({ length: 20 }, async () => (await device(s.code, m.id)).json.id as string));
    const results = await Promise.all(devices.map((id) => t.request({ method: 'POST', url: '/api/v1/power-connections', body: { deviceId: id, pduId: p.id, allocatedW: 500 } })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(5);
    for (const r of results.filter((x) => x.status !== 201)) expect(r.json.error.code).toBe('power_budget_exceeded');
    const [{ sum }] = await query<{ sum: number }>(t.db.url, 'SELECT sum(allocated_w)::int AS sum FROM power_connections WHERE pdu_id = $1', [p.id]);
    expect(sum).toBe(2500);
  });
});

describe('elevation and utilisation', () => {
  it('draws the rack as JSON and SVG, and counts units and power', async () => {
    const s = await site();
    const r = await rack(s.code, { heightU: 12, powerBudgetW: 4000 });
    const m2 = await model({ heightU: 2 });
    const half = await model({ fullDepth: false });
    const big = (await device(s.code, m2.id, { name: 'db <primary> & co', placement: { rack: r.id, position: 3, face: 'front' } })).json;
    await device(s.code, half.id, { name: 'patch-panel', role: 'network', placement: { rack: r.id, position: 12, face: 'rear' } });
    const panel = await post('/power-panels', { site: s.code, name: 'P1' });
    const feed = await post('/power-feeds', { panelId: panel.id, rackId: r.id, name: 'F1', amperage: 32 });
    const pdu = await post('/pdus', { feedId: feed.id, name: 'PDU1' });
    await post('/power-connections', { deviceId: big.id, pduId: pdu.id, allocatedW: 500, maxW: 700 });

    const e = (await t.request({ url: `/api/v1/racks/${r.id}/elevation` })).json;
    expect(e.units).toHaveLength(12);
    expect(e.units[0]).toEqual({ unit: 12, front: null, rear: { deviceId: expect.any(String), name: 'patch-panel', role: 'network' } });
    expect(e.units[12 - 3]).toMatchObject({ unit: 3, front: { deviceId: big.id }, rear: { deviceId: big.id } });
    expect(e.units[12 - 4]).toMatchObject({ unit: 4, front: { deviceId: big.id } });
    expect(e.free).toEqual({ front: 10, rear: 9, both: 9 });

    const svg = await t.request({ url: `/api/v1/racks/${r.id}/elevation.svg` });
    expect(svg.status).toBe(200);
    expect(svg.headers['content-type']).toBe('image/svg+xml; charset=utf-8');
    expect(svg.text).toMatch(/^<svg /);
    expect(svg.text).toContain('db &lt;primary&gt; &amp; co');
    expect(svg.text).not.toContain('<primary>');
    expect((svg.text.match(/class="device"/g) ?? []).length).toBe(3); // big on both faces, patch panel on the rear

    const ru = (await t.request({ url: `/api/v1/racks/${r.id}/utilisation` })).json;
    expect(ru).toEqual({
      rackId: r.id,
      name: r.name,
      units: { total: 12, usedFront: 2, usedRear: 3, used: 3, free: 9 },
      power: { budgetW: 4000, allocatedW: 500, maxW: 700, utilisationPct: 12.5 },
    });
    const su = (await t.request({ url: `/api/v1/sites/${s.code}/utilisation` })).json;
    expect(su).toMatchObject({ racks: 1, units: { total: 12, used: 3, free: 9 }, power: { rackBudgetW: 4000, allocatedW: 500, feeds: [{ name: 'F1', allocatedW: 500, budgetW: feed.budgetW }] } });
  });

  it('lists every inventory route in the OpenAPI document', async () => {
    const doc = (await t.request({ url: '/docs/json', token: '' })).json;
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/sites', '/api/v1/sites/{site}', '/api/v1/sites/{site}/utilisation', '/api/v1/racks', '/api/v1/racks/{id}',
        '/api/v1/racks/{id}/elevation', '/api/v1/racks/{id}/elevation.svg', '/api/v1/racks/{id}/utilisation', '/api/v1/hardware-models',
        '/api/v1/devices', '/api/v1/devices/{id}', '/api/v1/power-panels', '/api/v1/power-feeds', '/api/v1/pdus', '/api/v1/power-connections',
      ]),
    );
  });
});
