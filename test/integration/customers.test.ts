import { startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';
import { freeUdpPort, startSimBmc, type SimBmc } from '../support/ipmi-sim';
import { PlacementService } from '../../src/modules/vps/placement.service';

jest.setTimeout(90_000);

const KEY_A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA alice@a';
const RATE_LIMIT = 60;

let t: TestApp;
let sims: SimBmc[] = [];
let modelId: string;
let n = 0;
/** Customer tokens: A and B, each minted by the billing system. */
let tokenA: string;
let tokenB: string;
/** A's things, which B tries to reach. */
const a: { server?: string; orderServer?: string; vm?: string; order?: string; token?: string; job?: string } = {};

async function customer(id: string, name: string): Promise<string> {
  const put = await t.request({ method: 'PUT', url: `/api/v1/customers/${id}`, body: { name, email: `${id}@example.com` } });
  expect(put.status).toBe(201);
  const minted = await t.request({ method: 'POST', url: `/api/v1/customers/${id}/tokens`, body: { name: 'from billing' } });
  expect(minted.status).toBe(201);
  expect(minted.json.token).toMatch(/^rsc_/);
  return minted.json.token;
}

async function sim(power: 'on' | 'off'): Promise<SimBmc> {
  const s = await startSimBmc({ initialPower: power });
  sims.push(s);
  return s;
}

/** An active rented server; `owner` sets the inventory's customerId. */
async function server(bmc: { address: string; username: string; password: string } | null, owner?: string): Promise<string> {
  const res = await t.request({
    method: 'POST',
    url: '/api/v1/devices',
    body: { site: 'lab', name: `cs-${++n}`, role: 'rented-server', modelId, ...(owner ? { customerId: owner } : {}), ...(bmc ? { bmc: { address: bmc.address, username: bmc.username, password: bmc.password } } : {}) },
  });
  expect(res.status).toBe(201);
  for (const to of ['available', 'reserved', 'deploying', 'active']) await t.request({ method: 'POST', url: `/api/v1/servers/${res.json.id}/transition`, body: { to } });
  return res.json.id;
}

const my = (token: string, url: string, method = 'GET', body?: unknown) => t.request({ method, url: `/api/v1/my${url}`, token, body });

beforeAll(async () => {
  t = await startTestApp({ RACKSMITH_POWER_SYNC_INTERVAL: '0', RACKSMITH_IPMIPOWER_WORKAROUNDS: 'opensesspriv', RACKSMITH_CUSTOMER_RATE_LIMIT: String(RATE_LIMIT) });
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
  modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'IPMI', heightU: 1, bmcDriver: 'ipmitool' } })).json.id;
  tokenA = await customer('cust-a', 'Alice GmbH');
  tokenB = await customer('cust-b', 'Bob Ltd');
});
afterAll(async () => {
  await Promise.all(sims.map((s) => s.stop()));
  await t?.close();
});

describe('customers, as the billing system keeps them', () => {
  it('are created and updated by id; bad input names the field and writes nothing', async () => {
    const again = await t.request({ method: 'PUT', url: '/api/v1/customers/cust-a', body: { name: 'Alice GmbH', sshKeys: [KEY_A] } });
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ id: 'cust-a', name: 'Alice GmbH', email: 'cust-a@example.com', sshKeys: [KEY_A], disabled: null });
    const badId = await t.request({ method: 'PUT', url: '/api/v1/customers/has%20space', body: { name: 'x' } });
    expect(badId.status).toBe(400);
    expect(badId.json.error.field).toBe('id');
    const badKey = await t.request({ method: 'PUT', url: '/api/v1/customers/cust-z', body: { name: 'Zed', sshKeys: ['not a key'] } });
    expect(badKey.status).toBe(400);
    expect(badKey.json.error.field).toBe('sshKeys.0');
    const badMail = await t.request({ method: 'PUT', url: '/api/v1/customers/cust-z', body: { name: 'Zed', email: 'nope' } });
    expect(badMail.json.error.field).toBe('email');
    expect((await t.request({ url: '/api/v1/customers/cust-z' })).status).toBe(404);
    const page = (await t.request({ url: '/api/v1/customers?limit=1' })).json;
    expect(page.items.map((c: { id: string }) => c.id)).toEqual(['cust-a']);
    expect((await t.request({ url: `/api/v1/customers?limit=1&cursor=${page.nextCursor}` })).json.items[0].id).toBe('cust-b');
    expect((await t.request({ url: '/api/v1/customers?cursor=%21%21' })).json.error.field).toBe('cursor');
    const audit = (await t.request({ url: '/api/v1/audit?targetId=cust-a' })).json.items.map((e: { action: string }) => e.action);
    expect(audit).toEqual(expect.arrayContaining(['customer.create', 'customer.update', 'customer.token.create']));
  });

  it('a customer token reaches only /my, a staff token never reaches /my', async () => {
    expect((await my(tokenA, '')).json).toMatchObject({ id: 'cust-a', name: 'Alice GmbH' });
    for (const url of ['/api/v1/servers', '/api/v1/whoami', '/api/v1/customers', '/api/v1/audit']) {
      const res = await t.request({ url, token: tokenA });
      expect(res.status).toBe(403);
      expect(res.json.error.message).toContain('/api/v1/my');
    }
    expect((await t.request({ url: '/api/v1/my/servers' })).status).toBe(403);
    expect((await t.request({ url: '/api/v1/my/servers', token: 'rsc_unknown' })).status).toBe(401);
  });
});

describe('a customer sees and acts on their own machines only', () => {
  beforeAll(async () => {
    const bmcA = await sim('off');
    a.server = await server(bmcA, 'cust-a');
    // A server that is A's through a live order (the inventory names no owner), one through a terminated one (no longer A's).
    a.orderServer = await server(null);
    const gone = await server(null);
    a.order = 'ord-a-1';
    await query(t.db.url, `INSERT INTO orders (id, customer, plan, kind, state, server_id) VALUES ($1, 'cust-a', 'dedi-s', 'dedicated', 'active', $2), ('ord-a-0', 'cust-a', 'dedi-s', 'dedicated', 'terminated', $3)`, [a.order, a.orderServer, gone]);
    // B's own server, and a VM of A's (placed on a hypervisor, as an order would).
    await server(await sim('off'), 'cust-b');
    const hv = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: 'hv-1', role: 'hypervisor', modelId } })).json.id;
    expect((await t.request({ method: 'POST', url: '/api/v1/hypervisors', body: { deviceId: hv, ssh: { host: '127.0.0.1', port: 2222, hostKeySha256: 'a'.repeat(64) }, capacity: { vcpus: 8, ramMb: 16384, storageGb: 200 } } })).status).toBe(201);
    const siteId = (await t.request({ url: '/api/v1/sites/lab' })).json.id;
    const { vm } = await t.app.get(PlacementService).place({ vcpus: 1, ramMb: 1024, diskGb: 10, customer: 'cust-a', antiAffinity: false, siteIds: [siteId] }, { name: 'vm-a' });
    a.vm = vm.id;
    await query(t.db.url, `UPDATE vms SET state = 'running' WHERE id = $1`, [a.vm]);
    a.token = (await my(tokenA, '/tokens')).json.items[0].id;
    // A finished job of A's (as a reinstall leaves one), for the routes under /my/jobs.
    [{ id: a.job }] = await query<{ id: string }>(t.db.url, `INSERT INTO jobs (kind, site_id, state, created_by, finished_at) VALUES ('install', $1, 'succeeded', 'customer:cust-a', now()) RETURNING id`, [siteId]);
  });

  it('lists their servers (by inventory owner and by live order), VPS and orders; nobody else\'s', async () => {
    const servers = (await my(tokenA, '/servers')).json.items;
    expect(servers.map((s: { id: string }) => s.id).sort()).toEqual([a.server, a.orderServer].sort());
    expect(servers.find((s: { id: string }) => s.id === a.orderServer)).toMatchObject({ state: 'active', site: 'lab', order: { id: a.order, state: 'active' }, job: null });
    expect((await my(tokenA, `/servers/${a.server}`)).json).toMatchObject({ id: a.server, state: 'active', power: { state: null }, order: null });
    expect((await my(tokenA, '/vps')).json.items).toEqual([expect.objectContaining({ id: a.vm, name: 'vm-a', state: 'running' })]);
    expect((await my(tokenA, '/orders')).json.items.map((o: { id: string }) => o.id).sort()).toEqual(['ord-a-0', 'ord-a-1']);
    expect((await my(tokenB, '/servers')).json.items).toHaveLength(1);
    expect((await my(tokenB, '/vps')).json.items).toEqual([]);
    expect((await my(tokenB, '/orders')).json.items).toEqual([]);
  });

  it('tenancy: every customer route in the OpenAPI document, called by B on A\'s things, is a 404 and changes nothing', async () => {
    const doc = (await t.request({ url: '/docs/json', token: '' })).json;
    const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .filter(([path]) => path.startsWith('/api/v1/my'))
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => ({ path, method: method.toUpperCase() })));
    expect(routes.length).toBeGreaterThanOrEqual(18);
    const ownerOf: Record<string, string | undefined> = { servers: a.server, vps: a.vm, orders: a.order, tokens: a.token, jobs: a.job };
    const bodies: Record<string, unknown> = {
      'POST /api/v1/my/servers/{id}/power': { action: 'on' },
      'POST /api/v1/my/vps/{id}/power': { action: 'stop' },
      'POST /api/v1/my/servers/{id}/reinstall': { os: 'debian-12', hostname: 'stolen.example.com', sshKeys: [KEY_A] },
    };
    const snapshot = async () => ({
      rows: await query(t.db.url, `SELECT
          (SELECT count(*) FROM customer_tokens WHERE customer_id = 'cust-a' AND revoked_at IS NULL) AS a_tokens,
          (SELECT count(*) FROM power_events) AS power_events,
          (SELECT count(*) FROM jobs) AS jobs,
          (SELECT count(*) FROM customer_power_actions) AS cooldowns,
          (SELECT string_agg(id || state, ',' ORDER BY id) FROM vms) AS vms,
          (SELECT row_to_json(c)::text FROM customers c WHERE id = 'cust-a') AS a`),
      chassis: sims.map((s) => s.chassisLog().length),
    });
    const before = await snapshot();
    let walked = 0;
    for (const { path, method } of routes) {
      if (path === '/api/v1/my/login') continue; // public: a code, not a token
      if (path.endsWith('/events')) continue; // SSE needs a real socket: customer-reinstall.test.ts walks it over HTTP
      const param = /\{(\w+)\}/.exec(path);
      const collection = path.split('/')[4]!;
      if (!param) {
        // No id: the route answers about B only. Reads only (B's own token or keys are B's business).
        if (method !== 'GET') continue;
        const res = await my(tokenB, path.slice('/api/v1/my'.length));
        expect([path, res.status]).toEqual([path, 200]);
        for (const id of Object.values(ownerOf)) expect(res.text).not.toContain(id);
        continue;
      }
      const id = ownerOf[collection];
      if (!id) throw new Error(`the tenancy walk has no resource of customer A for ${method} ${path}: add one`);
      const url = path.replace(/\{\w+\}/, encodeURIComponent(id));
      const res = await t.request({ method, url, token: tokenB, body: bodies[`${method} ${path}`] ?? (method === 'GET' || method === 'DELETE' ? undefined : {}) });
      expect([method, path, res.status, res.json?.error?.code]).toEqual([method, path, 404, 'not_found']);
      walked++;
    }
    expect(walked).toBeGreaterThanOrEqual(9);
    expect(await snapshot()).toEqual(before);
    // Unknown ids are 404 in the same way (B cannot tell "not yours" from "does not exist").
    expect((await my(tokenB, '/servers/00000000-0000-4000-8000-000000000000')).json.error.code).toBe('not_found');
  });

  it('power on their own server through ipmi_sim, audited as customer:<id>; the cooldown refuses the next action with Retry-After', async () => {
    const sim = sims[0]!;
    const on = await my(tokenA, `/servers/${a.server}/power`, 'POST', { action: 'on' });
    expect(on.status).toBe(200);
    expect(on.json).toMatchObject({ powerState: 'on', reachable: true });
    expect(sim.power()).toBe('on');
    const again = await my(tokenA, `/servers/${a.server}/power`, 'POST', { action: 'reset' });
    expect(again.status).toBe(409);
    expect(again.json.error).toMatchObject({ code: 'power_cooldown', field: 'action' });
    expect(Number(again.headers['retry-after'])).toBeGreaterThan(0);
    const audit = (await t.request({ url: `/api/v1/audit?action=server.power&targetId=${a.server}` })).json.items;
    expect(audit).toEqual([expect.objectContaining({ actor: expect.objectContaining({ name: 'customer:cust-a', kind: 'customer', role: 'customer' }) })]);
    expect(audit[0].changes).toMatchObject({ action: 'on', to: 'on' });
  });

  it('reset and the power button against ipmi_sim, each on a server of its own', async () => {
    const running = await sim('on');
    const id = await server(running, 'cust-a');
    const sets = running.chassisLog().length;
    const reset = await my(tokenA, `/servers/${id}/power`, 'POST', { action: 'reset' });
    expect(reset.status).toBe(200);
    expect(running.chassisLog().slice(sets)).toEqual(expect.arrayContaining([expect.stringMatching(/^reset|^power/)]));
    const off = await sim('off');
    const pressed = await server(off, 'cust-a');
    const press = await my(tokenA, `/servers/${pressed}/power`, 'POST', { action: 'button' });
    expect(press.status).toBe(200);
    expect(off.power()).toBe('on');
  });

  it('a BMC that does not answer is a 502, and gives the cooldown back', async () => {
    const id = await server({ address: `127.0.0.1:${await freeUdpPort()}`, username: 'admin', password: 'x' }, 'cust-a');
    const first = await my(tokenA, `/servers/${id}/power`, 'POST', { action: 'on' });
    expect(first.status).toBe(502);
    const second = await my(tokenA, `/servers/${id}/power`, 'POST', { action: 'on' });
    expect(second.json.error.code).toBe('bmc_unreachable');
  });

  it('bad input: an unknown action names the field; a server that is not active or is suspended is a 409', async () => {
    const bad = await my(tokenA, `/servers/${a.orderServer}/power`, 'POST', { action: 'cycle' });
    expect(bad.status).toBe(400);
    expect(bad.json.error.field).toBe('action');
    await query(t.db.url, `UPDATE orders SET state = 'suspended' WHERE id = $1`, [a.order]);
    const suspended = await my(tokenA, `/servers/${a.orderServer}/power`, 'POST', { action: 'on' });
    expect(suspended.json.error.code).toBe('server_suspended');
    await query(t.db.url, `UPDATE orders SET state = 'active' WHERE id = $1`, [a.order]);
    await t.request({ method: 'PUT', url: `/api/v1/servers/${a.orderServer}/maintenance`, body: { enabled: true, reason: 'fan swap' } });
    expect((await my(tokenA, `/servers/${a.orderServer}/power`, 'POST', { action: 'on' })).json.error.code).toBe('in_maintenance');
    await t.request({ method: 'PUT', url: `/api/v1/servers/${a.orderServer}/maintenance`, body: { enabled: false } });
    expect((await my(tokenA, '/servers/not-a-uuid')).json.error.field).toBe('id');
  });
});

describe('customer tokens, login links and staff control', () => {
  it('a customer makes tokens for themselves only, and revokes them', async () => {
    const made = await my(tokenA, '/tokens', 'POST', { name: 'terraform' });
    expect(made.status).toBe(201);
    expect((await my(made.json.token, '')).json.id).toBe('cust-a');
    expect((await my(tokenB, `/tokens/${made.json.id}`, 'DELETE')).status).toBe(404);
    expect((await my(made.json.token, '')).status).toBe(200);
    expect((await my(tokenA, `/tokens/${made.json.id}`, 'DELETE')).json.revokedAt).not.toBeNull();
    expect((await my(made.json.token, '')).status).toBe(401);
    const past = await my(tokenA, '/tokens', 'POST', { name: 'old', expiresAt: '2001-01-01T00:00:00Z' });
    expect(past.json.error.field).toBe('expiresAt');
  });

  it('a one-time login link opens a session once', async () => {
    const link = await t.request({ method: 'POST', url: '/api/v1/customers/cust-b/login-links', body: {} });
    expect(link.status).toBe(201);
    expect(link.json.url).toContain(`/my/login#${link.json.code}`);
    const session = await t.request({ method: 'POST', url: '/api/v1/my/login', token: '', body: { code: link.json.code } });
    expect(session.status).toBe(200);
    expect(session.json).toMatchObject({ customerId: 'cust-b', kind: 'session' });
    expect(new Date(session.json.expiresAt).getTime()).toBeGreaterThan(Date.now() + 3600_000);
    expect((await my(session.json.token, '')).json.id).toBe('cust-b');
    const twice = await t.request({ method: 'POST', url: '/api/v1/my/login', token: '', body: { code: link.json.code } });
    expect(twice.status).toBe(401);
    expect((await t.request({ method: 'POST', url: '/api/v1/my/login', token: '', body: {} })).json.error.field).toBe('code');
  });

  it('staff stop a customer: disabled, every token of theirs is refused; enabled again, they work', async () => {
    await t.request({ method: 'PUT', url: '/api/v1/customers/cust-c', body: { name: 'Carol' } });
    const c = (await t.request({ method: 'POST', url: '/api/v1/customers/cust-c/tokens', body: { name: 'c' } })).json.token;
    const off = await t.request({ method: 'PUT', url: '/api/v1/customers/cust-c/disabled', body: { disabled: true, reason: 'abuse report 42' } });
    expect(off.json.disabled).toMatchObject({ reason: 'abuse report 42' });
    const refused = await my(c, '/servers');
    expect(refused.status).toBe(403);
    expect(refused.json.error.message).toContain('disabled');
    await t.request({ method: 'PUT', url: '/api/v1/customers/cust-c/disabled', body: { disabled: false } });
    expect((await my(c, '/servers')).status).toBe(200);
    const tokens = (await t.request({ url: '/api/v1/customers/cust-c/tokens' })).json.items;
    expect((await t.request({ method: 'DELETE', url: `/api/v1/customers/cust-c/tokens/${tokens[0].id}` })).json.revokedAt).not.toBeNull();
    expect((await my(c, '/servers')).status).toBe(401);
  });

  it('each customer has a rate limit; the refusal names it, and other customers go on', async () => {
    await t.request({ method: 'PUT', url: '/api/v1/customers/cust-d', body: { name: 'Dave' } });
    const d = (await t.request({ method: 'POST', url: '/api/v1/customers/cust-d/tokens', body: { name: 'd' } })).json.token;
    const statuses: number[] = [];
    for (let i = 0; i < RATE_LIMIT + 1; i++) statuses.push((await my(d, '')).status);
    expect(statuses.slice(0, RATE_LIMIT).every((s) => s === 200)).toBe(true);
    const last = await my(d, '');
    expect(last.status).toBe(429);
    expect(last.json.error).toMatchObject({ code: 'rate_limited', details: { limit: `${RATE_LIMIT} requests per minute per customer` } });
    expect(Number(last.headers['retry-after'])).toBeGreaterThan(0);
    expect((await my(tokenB, '')).status).toBe(200);
  });
});
