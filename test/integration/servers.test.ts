import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';
import { ServerLifecycleService } from '../../src/modules/servers/server-lifecycle.service';
import { transitionPairs } from '../../src/modules/servers/lifecycle';

let t: TestApp;
let lifecycle: ServerLifecycleService;
let modelId: string;
beforeAll(async () => {
  t = await startTestApp();
  lifecycle = t.app.get(ServerLifecycleService);
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'bal', name: 'Baltic' } });
  modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'Dell', model: 'R650', heightU: 1 } })).json.id;
});
afterAll(() => t?.close());

let n = 0;
async function server(): Promise<string> {
  const res = await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'bal', name: `rs-${++n}`, role: 'rented-server', modelId } });
  return res.json.id;
}
const move = (id: string, to: string, token?: string) => t.request({ method: 'POST', url: `/api/v1/servers/${id}/transition`, body: { to, note: `to ${to}` }, ...(token ? { token } : {}) });

describe('server lifecycle', () => {
  it('starts new, walks the allowed path, and keeps every move with its cause', async () => {
    const id = await server();
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json).toMatchObject({ state: 'new', next: ['inspecting', 'available', 'retired'], maintenance: { enabled: false } });
    for (const to of ['inspecting', 'available']) expect((await move(id, to)).status).toBe(201);
    await lifecycle.transition(id, 'reserved', { type: 'billing', id: 'order-77' });
    await lifecycle.transition(id, 'deploying', { type: 'job', id: 'job-1' }, { from: ['reserved'] });
    await lifecycle.transition(id, 'failed', { type: 'job', id: 'job-1', note: 'installer never called back' });
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json).toMatchObject({ state: 'failed', lastError: 'installer never called back' });
    expect((await move(id, 'deploying')).json.state).toBe('deploying');
    const history = (await t.request({ url: `/api/v1/servers/${id}/history` })).json;
    expect(history.map((h: { from: string; to: string; cause: { type: string } }) => `${h.from}>${h.to}:${h.cause.type}`)).toEqual([
      'new>inspecting:user',
      'inspecting>available:user',
      'available>reserved:billing',
      'reserved>deploying:job',
      'deploying>failed:job',
      'failed>deploying:user',
    ]);
    expect(history[2].cause).toEqual({ type: 'billing', id: 'order-77' });
    expect(history[0].actor).toBe('bootstrap');
  });

  it('refuses a move the machine does not allow, naming the current state, in the API and in the database', async () => {
    const id = await server();
    const res = await move(id, 'active');
    expect(res.status).toBe(409);
    expect(res.json.error).toMatchObject({ code: 'illegal_transition', details: { state: 'new', requested: 'active' } });
    expect(res.json.error.message).toContain('is new');
    await expect(query(t.db.url, "UPDATE devices SET lifecycle = 'active' WHERE id = $1", [id])).rejects.toThrow(/illegal lifecycle transition new -> active/);
    expect((await t.request({ url: `/api/v1/servers/${id}/history` })).json).toEqual([]);
    const readonly = (await t.request({ method: 'POST', url: '/api/v1/tokens', body: { name: 'ro', role: 'readonly' } })).json.token;
    expect((await move(id, 'inspecting', readonly)).status).toBe(403);
  });

  it('lets exactly one of 20 concurrent reservations win', async () => {
    const id = await server();
    await move(id, 'available');
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => lifecycle.transition(id, 'reserved', { type: 'billing', id: `order-${i}` }, { from: ['available'] })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((x) => x.status === 'rejected')) expect((r as PromiseRejectedResult).reason.code).toBe('illegal_transition');
    expect(await query(t.db.url, "SELECT count(*)::int AS n FROM server_transitions WHERE device_id = $1 AND to_state = 'reserved'", [id])).toEqual([{ n: 1 }]);
  });

  it('keeps automation off a server in maintenance, but not an engineer', async () => {
    const id = await server();
    await move(id, 'available');
    const on = await t.request({ method: 'PUT', url: `/api/v1/servers/${id}/maintenance`, body: { enabled: true, reason: 'RAM swap' } });
    expect(on.json.maintenance).toEqual({ enabled: true, reason: 'RAM swap' });
    await expect(lifecycle.transition(id, 'reserved', { type: 'billing', id: 'o-1' })).rejects.toMatchObject({ code: 'in_maintenance' });
    expect((await move(id, 'inspecting')).status).toBe(201);
    const list = (await t.request({ url: '/api/v1/servers?maintenance=true' })).json.items.map((s: { id: string }) => s.id);
    expect(list).toEqual([id]);
  });

  it('lists only rented servers', async () => {
    await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'bal', name: 'sw-1', role: 'network', modelId } });
    const all = (await t.request({ url: '/api/v1/servers?limit=500' })).json.items;
    expect(all.every((s: { name: string }) => s.name.startsWith('rs-'))).toBe(true);
    expect(await query(t.db.url, "SELECT lifecycle FROM devices WHERE name = 'sw-1'")).toEqual([{ lifecycle: null }]);
  });

  it('has the same transitions in the code and in the database trigger', () => {
    const sql = readFileSync(join(__dirname, '..', '..', 'src', 'database', 'migrations', '1732490000000-server-lifecycle.ts'), 'utf8');
    const inTrigger = [...sql.matchAll(/'([a-z]+>[a-z]+)'/g)].map((m) => m[1]).sort();
    expect(inTrigger).toEqual(transitionPairs().sort());
  });
});
