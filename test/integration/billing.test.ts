import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';
import { until } from '../support/wait';
import { signatureHeader, verifySignature } from '../../src/modules/billing/billing-signature';
import { BillingProcessor } from '../../src/modules/billing/billing-processor.service';
import { OrdersService, vmNameFor } from '../../src/modules/billing/orders.service';
import { HypervisorDrivers } from '../../src/modules/vps/hypervisor-drivers';
import { FakeHypervisorDriver } from '../../src/drivers/hypervisor/fake-hypervisor.driver';
import { OutboxService } from '../../src/modules/billing/outbox.service';
import { BillingRepository } from '../../src/modules/billing/billing.repository';
import { InstallService } from '../../src/modules/servers/install.service';
import { JobService } from '../../src/jobs/job.service';
import { JobRunner } from '../../src/jobs/job-runner';
import { JobRegistry } from '../../src/jobs/job-registry';
import { JobRepository } from '../../src/jobs/job.repository';
import { JobQueue } from '../../src/jobs/job-queue';
import { Database } from '../../src/database/database';
import { BmcDrivers } from '../../src/drivers/bmc/bmc-drivers';
import type { FakeBmcDriver } from '../../src/drivers/bmc/fake-bmc.driver';

const SECRET = 'billing-secret-0123456789';
const OLD_SECRET = 'billing-secret-previous-xyz';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl customer@example';

let t: TestApp;
let processor: BillingProcessor;
let modelId: string;
let otherModelId: string;
let billing: Server;
const received: { body: any; ok: boolean }[] = [];
let answerBilling = 200;
let billingDelayMs = 0;

beforeAll(async () => {
  // The billing system's side: checks each delivery's signature and keeps it.
  billing = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let ok = true;
      try {
        verifySignature(req.headers['racksmith-signature'], body, [SECRET], 300);
      } catch {
        ok = false;
      }
      received.push({ body: JSON.parse(body.toString()), ok });
      setTimeout(() => res.writeHead(ok ? answerBilling : 401).end(), billingDelayMs);
    });
  });
  await new Promise<void>((r) => billing.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(billing.address() as AddressInfo).port}/racksmith-events`;
  t = await startTestApp({ RACKSMITH_BILLING_SECRETS: `${SECRET},${OLD_SECRET}`, RACKSMITH_BILLING_URL: url });
  processor = t.app.get(BillingProcessor);
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab2', name: 'Lab 2' } });
  modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'Big', heightU: 1, bmcDriver: 'fake', cpuCores: 32, ramGb: 256, disks: [{ kind: 'nvme', sizeGb: 1920, count: 2 }] } })).json.id;
  otherModelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'Small', heightU: 1, bmcDriver: 'fake', cpuCores: 4, ramGb: 16 } })).json.id;
  expect((await t.request({ method: 'PUT', url: '/api/v1/billing/plans/dedi-big', body: { kind: 'dedicated', spec: { minCpuCores: 16, minRamGb: 128 } } })).status).toBe(201);
  expect((await t.request({ method: 'PUT', url: '/api/v1/billing/plans/dedi-small', body: { kind: 'dedicated', spec: { hardwareModel: 'T/Small', sites: ['lab2'] } } })).status).toBe(201);
  expect((await t.request({ method: 'PUT', url: '/api/v1/billing/plans/vps-1', body: { kind: 'vps', spec: { vcpus: 1, ramMb: 1024, diskGb: 20 } } })).status).toBe(201);
}, 60_000);
afterAll(async () => {
  await processor?.stop();
  await t?.close();
  await new Promise((r) => billing?.close(r));
});

let n = 0;
async function server(model = modelId, site = 'lab'): Promise<string> {
  const id = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site, name: `bs-${++n}`, role: 'rented-server', modelId: model, bmc: { address: '127.0.0.2', username: 'admin', password: 'secret' }, nics: [{ name: 'eth0', mac: mac(n), pxe: true, ip: `10.9.${n >> 8}.${n & 255}` }] } })).json.id;
  expect((await t.request({ method: 'POST', url: `/api/v1/servers/${id}/transition`, body: { to: 'available' } })).status).toBeLessThan(300);
  return id;
}
const mac = (i: number) => `52:54:00:aa:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;

let ev = 0;
function event(type: string, order: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { id: `evt-${++ev}-${Date.now()}`, type, occurredAt: new Date().toISOString(), order: { customer: 'cus-1', ...order }, ...extra };
}
function post(body: unknown, opts: { secret?: string; at?: number; raw?: string; header?: string | null; contentType?: string } = {}) {
  const payload = opts.raw ?? JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/json' };
  if (opts.header !== null) headers['racksmith-signature'] = opts.header ?? signatureHeader(opts.secret ?? SECRET, payload, opts.at);
  return t.request({ method: 'POST', url: '/webhooks/billing', payload, headers, token: '' });
}
const count = async (sql: string, params: unknown[] = []) => Number((await query<{ n: string }>(t.db.url, `SELECT count(*) AS n FROM ${sql}`, params))[0].n);
const drain = async (workers = 1) => {
  await Promise.all(Array.from({ length: workers }, async () => {
    while (await processor.processOne()) {
      /* next */
    }
  }));
};

describe('the billing webhook', () => {
  it('refuses a missing, wrong, stale or malformed signature with 401 and stores nothing', async () => {
    const body = event('order.terminated', { id: 'ord-sig' });
    const missing = await post(body, { header: null });
    expect(missing.status).toBe(401);
    expect(missing.json.error).toMatchObject({ code: 'missing_signature', field: 'racksmith-signature' });
    expect((await post(body, { secret: 'not-the-secret-at-all' })).json.error.code).toBe('bad_signature');
    expect((await post(body, { at: Math.floor(Date.now() / 1000) - 301 })).json.error.code).toBe('stale_signature');
    expect((await post(body, { at: Math.floor(Date.now() / 1000) + 400 })).json.error.code).toBe('stale_signature');
    expect((await post(body, { header: 't=abc,v1=zz' })).json.error.code).toBe('malformed_signature');
    // A signature over other bytes (the body changed in transit).
    const tampered = await post(body, { raw: JSON.stringify({ ...body, order: { ...body.order, customer: 'cus-2' } }), header: signatureHeader(SECRET, JSON.stringify(body)) });
    expect(tampered.json.error.code).toBe('bad_signature');
    expect(await count('billing_events')).toBe(0);
    // Both secrets of a rotation are accepted.
    expect((await post(body, { secret: OLD_SECRET })).status).toBe(202);
  });

  it('answers bad payloads with 400 naming the field, and stores nothing', async () => {
    const before = await count('billing_events');
    const noCustomer = await post({ id: 'evt-x1', type: 'order.paid', occurredAt: new Date().toISOString(), order: { id: 'o1', plan: 'dedi-big' } });
    expect(noCustomer.status).toBe(400);
    expect(noCustomer.json.error).toMatchObject({ code: 'validation_failed', field: 'order.customer' });
    expect((await post(event('order.paid', { id: 'o1' }))).json.error).toMatchObject({ field: 'order.plan' });
    expect((await post(event('order.paid', { id: 'o1', plan: 'no-such-plan' }))).json.error).toMatchObject({ field: 'order.plan', message: expect.stringContaining('no plan no-such-plan') });
    expect((await post(event('order.paid', { id: 'o1', plan: 'dedi-big', options: { os: 'windows-11' } }))).json.error).toMatchObject({ field: 'order.options.os' });
    expect((await post(event('order.paid', { id: 'o1', plan: 'vps-1', options: { os: 'debian-12' } }))).json.error).toMatchObject({ field: 'order.options.os' });
    expect((await post(event('order.paid', { id: 'o1', plan: 'dedi-big', options: { sshKeys: ['not a key'] } }))).json.error).toMatchObject({ field: 'order.options.sshKeys.0' });
    expect((await post(event('order.refunded', { id: 'o1' }))).json.error).toMatchObject({ field: 'type' });
    expect((await post({ ...event('order.paid', { id: 'o1', plan: 'dedi-big' }), occurredAt: 'yesterday' })).json.error).toMatchObject({ field: 'occurredAt' });
    expect((await post({ ...event('order.paid', { id: 'o1', plan: 'dedi-big' }), extra: 1 })).json.error.code).toBe('validation_failed');
    const notJson = await post(undefined, { raw: '{"id": "evt-' });
    expect(notJson.status).toBe(400);
    expect(notJson.json.error.code).toBe('malformed_json');
    const form = await post(undefined, { raw: 'a=b', contentType: 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    expect(await count('billing_events')).toBe(before);
  });

  it('gives one event delivered 50 times at once the same answer and one provisioning', async () => {
    await server();
    const body = event('order.paid', { id: 'ord-dup', plan: 'dedi-big', options: { hostname: 'dup.example.com', sshKeys: [KEY] } });
    const answers = await Promise.all(Array.from({ length: 50 }, () => post(body)));
    expect(new Set(answers.map((a) => `${a.status} ${a.text}`))).toEqual(new Set([`202 ${JSON.stringify({ eventId: body.id, orderId: 'ord-dup', received: true })}`]));
    expect(await count('billing_events WHERE id = $1', [body.id])).toBe(1);
    // Redelivered later, with a fresh signature: still the same answer.
    expect((await post(body)).status).toBe(202);
    // The same id with other content is a mistake in billing, not a redelivery.
    const reused = await post({ ...body, order: { ...body.order, plan: 'dedi-small' } });
    expect(reused.status).toBe(409);
    expect(reused.json.error).toMatchObject({ code: 'event_id_reused', field: 'id' });
    await drain(4);
    expect(await count("jobs WHERE kind = 'order-provision' AND params->>'orderId' = 'ord-dup'")).toBe(1);
    const order = (await t.request({ url: '/api/v1/billing/orders/ord-dup' })).json;
    expect(order).toMatchObject({ state: 'provisioning', customer: 'cus-1', plan: 'dedi-big', kind: 'dedicated', serverId: expect.any(String), jobId: expect.any(String) });
    expect((await t.request({ url: `/api/v1/servers/${order.serverId}` })).json.state).toBe('reserved');
    const events = (await t.request({ url: '/api/v1/billing/events?order=ord-dup' })).json.items;
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ state: 'processed', attempts: 1, result: expect.stringContaining('reserved') });
  });

  it('reserves exactly 20 servers for 100 concurrent paid orders and backorders the other 80', async () => {
    // Fresh stock of a model no other test uses.
    const model = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'Rush', heightU: 1, bmcDriver: 'fake', cpuCores: 8, ramGb: 32 } })).json.id;
    await t.request({ method: 'PUT', url: '/api/v1/billing/plans/dedi-rush', body: { kind: 'dedicated', spec: { hardwareModel: 'T/Rush' } } });
    const stock = await Promise.all(Array.from({ length: 20 }, () => server(model)));
    const bodies = Array.from({ length: 100 }, (_, i) => event('order.paid', { id: `ord-rush-${i}`, customer: `cus-r${i}`, plan: 'dedi-rush', options: { sshKeys: [KEY] } }));
    const answers = await Promise.all(bodies.map((b) => post(b)));
    expect(answers.every((a) => a.status === 202)).toBe(true);
    // Several processors at once, as several racksmith processes would.
    await drain(6);
    const rows = await query<{ state: string; server_id: string | null }>(t.db.url, "SELECT state, server_id FROM orders WHERE plan = 'dedi-rush'");
    expect(rows.filter((r) => r.state === 'provisioning')).toHaveLength(20);
    expect(rows.filter((r) => r.state === 'backordered')).toHaveLength(80);
    expect(new Set(rows.filter((r) => r.server_id).map((r) => r.server_id))).toEqual(new Set(stock));
    const [site] = await query<{ id: string }>(t.db.url, "SELECT id FROM sites WHERE code = 'lab'");
    expect(await count("work_tasks WHERE kind = 'backorder' AND state = 'open' AND site_id = $1 AND ref_id LIKE 'ord-rush-%'", [site.id])).toBe(80);
    expect(await count("billing_outbox WHERE type = 'order.backordered' AND order_id LIKE 'ord-rush-%'")).toBe(80);

    // A server comes back into stock: the oldest backorder gets it, its task is closed.
    const returned = await server(model);
    expect(await t.app.get(OrdersService).fillBackorders()).toBe(1);
    const [filled] = await query<{ id: string; state: string }>(t.db.url, 'SELECT id, state FROM orders WHERE server_id = $1', [returned]);
    expect(filled.state).toBe('provisioning');
    expect(await count("work_tasks WHERE kind = 'backorder' AND state = 'done' AND ref_id = $1", [filled.id])).toBe(1);
    expect(await t.app.get(OrdersService).fillBackorders()).toBe(0);
  }, 120_000);

  it('picks only a server whose biggest disk the plan\'s image fits on, and backorders naming the disk when none has one', async () => {
    await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'img', name: 'Image site' } });
    const tiny = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'Tiny', heightU: 1, bmcDriver: 'fake', disks: [{ kind: 'ssd', sizeGb: 2, count: 4 }] } })).json.id;
    const roomy = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'Roomy', heightU: 1, bmcDriver: 'fake', disks: [{ kind: 'ssd', sizeGb: 8, count: 1 }] } })).json.id;
    expect((await t.request({ method: 'PUT', url: '/api/v1/images/deb-3g', body: { os: 'debian-12', file: '/srv/images/deb-3g.raw.gz', sha256: 'e'.repeat(64), diskBytes: 3e9 } })).status).toBe(201);
    expect((await t.request({ method: 'PUT', url: '/api/v1/billing/plans/dedi-img', body: { kind: 'dedicated', spec: { sites: ['img'], images: { 'debian-12': 'deb-3g' } } } })).status).toBe(201);
    // 8 GB in all, but no one disk holds the 3 GB image.
    const small = await server(tiny, 'img');
    expect((await post(event('order.paid', { id: 'ord-img', plan: 'dedi-img', options: { os: 'debian-12', sshKeys: [KEY] } }))).status).toBe(202);
    await drain();
    expect((await t.request({ url: '/api/v1/billing/orders/ord-img' })).json).toMatchObject({ state: 'backordered', serverId: null });
    const [task] = await query<{ title: string }>(t.db.url, "SELECT title FROM work_tasks WHERE ref_id = 'ord-img' AND kind = 'backorder'");
    expect(task.title).toContain('No matching server with a disk of at least 3 GB (image deb-3g) for paid order ord-img');
    const big = await server(roomy, 'img');
    expect(await t.app.get(OrdersService).fillBackorders()).toBe(1);
    expect((await t.request({ url: '/api/v1/billing/orders/ord-img' })).json).toMatchObject({ state: 'provisioning', serverId: big });
    expect((await t.request({ url: `/api/v1/servers/${small}` })).json.state).toBe('available');
  });

  it('backorders an order whose only matching servers are at a site with its boot services off, naming it, and provisions it once the site boots', async () => {
    await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'noboot', name: 'No boot yet' } });
    expect((await t.request({ method: 'PUT', url: '/api/v1/billing/plans/dedi-noboot', body: { kind: 'dedicated', spec: { sites: ['noboot'] } } })).status).toBe(201);
    const lab = (await query<{ id: string }>(t.db.url, "SELECT id FROM sites WHERE code = 'lab'"))[0]!.id;
    const noboot = (await query<{ id: string }>(t.db.url, "SELECT id FROM sites WHERE code = 'noboot'"))[0]!.id;
    // The test app's boot announcement covers every site (role all): for now it covers lab only.
    await query(t.db.url, 'UPDATE boot_agents SET site_id = $1', [lab]);
    try {
      const id = await server(modelId, 'noboot');
      expect((await post(event('order.paid', { id: 'ord-noboot', plan: 'dedi-noboot', options: { sshKeys: [KEY] } }))).status).toBe(202);
      await drain();
      expect((await t.request({ url: '/api/v1/billing/orders/ord-noboot' })).json).toMatchObject({ state: 'backordered', serverId: null });
      const [task] = await query<{ title: string }>(t.db.url, "SELECT title FROM work_tasks WHERE ref_id = 'ord-noboot' AND kind = 'backorder'");
      expect(task.title).toContain('boot_services_off at noboot');
      // Nothing was powered or reserved.
      expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('available');
      expect(await count('jobs WHERE server_id = $1', [id])).toBe(0);
      // An agent at the site comes up: the backorder is filled.
      await query(t.db.url, "INSERT INTO boot_agents (id, site_id, address, http_base) VALUES (gen_random_uuid(), $1, '127.0.0.1', 'http://127.0.0.1:1')", [noboot]);
      expect(await t.app.get(OrdersService).fillBackorders()).toBe(1);
      expect((await t.request({ url: '/api/v1/billing/orders/ord-noboot' })).json).toMatchObject({ state: 'provisioning', serverId: id });
    } finally {
      await query(t.db.url, 'DELETE FROM boot_agents WHERE site_id = $1', [noboot]);
      await query(t.db.url, 'UPDATE boot_agents SET site_id = NULL');
    }
  });

  it('with IPKVM in the plan, passes over a server whose BMC cannot give it for one that can, and backorders naming the BMC when none can', async () => {
    await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'kvm', name: 'KVM site' } });
    expect((await t.request({ method: 'PUT', url: '/api/v1/billing/plans/dedi-kvm', body: { kind: 'dedicated', spec: { sites: ['kvm'] } } })).status).toBe(201);
    const fake = t.app.get(BmcDrivers).get('fake') as FakeBmcDriver;
    // Picked first by name, but its BMC hands an OPERATOR account an ADMINISTRATOR session.
    const unsafe = await server(modelId, 'kvm');
    fake.machine(unsafe).privilegeUnsafe = true;
    const safe = await server(modelId, 'kvm');
    expect((await post(event('order.paid', { id: 'ord-kvm-1', plan: 'dedi-kvm', options: { sshKeys: [KEY] } }))).status).toBe(202);
    await drain();
    expect((await t.request({ url: '/api/v1/billing/orders/ord-kvm-1' })).json).toMatchObject({ state: 'provisioning', serverId: safe });
    // The check left nothing on either BMC, and was recorded.
    expect(fake.machine(unsafe).users.filter((u) => u.name.startsWith('rs-'))).toEqual([]);
    expect(fake.machine(safe).users.filter((u) => u.name.startsWith('rs-'))).toEqual([]);
    expect((await t.request({ url: `/api/v1/servers/${unsafe}/power` })).json.privilegeCheck).toBe('privilege-unsafe');
    expect((await t.request({ url: `/api/v1/servers/${safe}/power` })).json.privilegeCheck).toBe('enforced');
    expect((await t.request({ url: `/api/v1/servers/${unsafe}` })).json.state).toBe('available');

    // The next order finds only the unsafe one: it waits, and says why.
    expect((await post(event('order.paid', { id: 'ord-kvm-2', plan: 'dedi-kvm', options: { sshKeys: [KEY] } }))).status).toBe(202);
    await drain();
    expect((await t.request({ url: '/api/v1/billing/orders/ord-kvm-2' })).json).toMatchObject({ state: 'backordered', serverId: null });
    const [task] = await query<{ title: string }>(t.db.url, "SELECT title FROM work_tasks WHERE ref_id = 'ord-kvm-2' AND kind = 'backorder'");
    expect(task.title).toContain("No matching server whose BMC can give the plan's IPKVM access");
    expect(task.title).toContain('privilege-unsafe BMC');
    // A plan without IPKVM takes it.
    expect((await t.request({ method: 'PUT', url: '/api/v1/billing/plans/dedi-kvm-none', body: { kind: 'dedicated', spec: { sites: ['kvm'], ipkvm: false } } })).status).toBe(201);
    expect((await post(event('order.paid', { id: 'ord-kvm-3', plan: 'dedi-kvm-none', options: { sshKeys: [KEY] } }))).status).toBe(202);
    await drain();
    expect((await t.request({ url: '/api/v1/billing/orders/ord-kvm-3' })).json).toMatchObject({ state: 'provisioning', serverId: unsafe });
    const bad = await t.request({ method: 'PUT', url: '/api/v1/billing/plans/dedi-kvm-bad', body: { kind: 'dedicated', spec: { ipkvm: 'yes' } } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.field).toBe('spec.ipkvm');
  });

  it('loses nothing when processing dies between storing and finishing', async () => {
    await server();
    const body = event('order.paid', { id: 'ord-crash', plan: 'dedi-big', options: { sshKeys: [KEY] } });
    expect((await post(body)).status).toBe(202);
    // Stored before the answer, not yet processed (no processor was running: as after a crash).
    expect((await query(t.db.url, 'SELECT state FROM billing_events WHERE id = $1', [body.id]))[0]).toEqual({ state: 'pending' });
    // The process dies after applying it, before the commit: the order row it wrote goes with it.
    const repo = t.app.get(BillingRepository);
    const crash = jest.spyOn(repo, 'finishEvents').mockRejectedValueOnce(new Error('killed before the commit'));
    await expect(processor.processOne()).rejects.toThrow('killed before the commit');
    crash.mockRestore();
    expect(await count("orders WHERE id = 'ord-crash'")).toBe(0);
    expect(await count("jobs WHERE params->>'orderId' = 'ord-crash'")).toBe(0);
    expect((await query(t.db.url, 'SELECT state, attempts FROM billing_events WHERE id = $1', [body.id]))[0]).toEqual({ state: 'pending', attempts: 0 });
    // Applying it fails half-way (here: creating its job, after the order row and the reservation): rolled back alone, retried later.
    const broken = jest.spyOn(t.app.get(JobService), 'create').mockRejectedValueOnce(new Error('job insert failed'));
    await processor.processOne();
    broken.mockRestore();
    expect(await count("orders WHERE id = 'ord-crash'")).toBe(0);
    expect(await count("jobs WHERE params->>'orderId' = 'ord-crash'")).toBe(0);
    const [row] = await query<{ state: string; attempts: number; result: string }>(t.db.url, 'SELECT state, attempts, result FROM billing_events WHERE id = $1', [body.id]);
    expect(row).toMatchObject({ state: 'pending', attempts: 1, result: 'job insert failed' });
    expect(await count("devices WHERE lifecycle = 'reserved' AND id NOT IN (SELECT server_id FROM orders WHERE server_id IS NOT NULL)")).toBe(0);
    // The next pass (after its backoff) applies it once.
    await query(t.db.url, 'UPDATE billing_events SET not_before = now() WHERE id = $1', [body.id]);
    await drain();
    expect((await t.request({ url: '/api/v1/billing/orders/ord-crash' })).json.state).toBe('provisioning');
    expect(await count("jobs WHERE params->>'orderId' = 'ord-crash'")).toBe(1);
  });

  it('handles events out of order: terminate before paid, suspend before paid, a stale unsuspend', async () => {
    const early = event('order.terminated', { id: 'ord-gone' });
    expect((await post(early)).status).toBe(202);
    await drain();
    const late = event('order.paid', { id: 'ord-gone', plan: 'dedi-big', options: { sshKeys: [KEY] } }, { occurredAt: new Date(Date.now() - 60_000).toISOString() });
    await post(late);
    await drain();
    expect((await t.request({ url: '/api/v1/billing/orders/ord-gone' })).json).toMatchObject({ state: 'terminated', serverId: null });
    expect((await t.request({ url: '/api/v1/billing/events?order=ord-gone' })).json.items.map((e: { state: string }) => e.state)).toEqual(['ignored', 'processed']);

    const suspendFirst = event('order.suspended', { id: 'ord-sus' });
    await post(suspendFirst);
    await drain();
    expect((await t.request({ url: '/api/v1/billing/orders/ord-sus' })).json).toMatchObject({ state: 'unpaid', suspendRequested: true });
    // An unsuspend that happened before that suspend, delivered after it: ignored.
    await post(event('order.unsuspended', { id: 'ord-sus' }, { occurredAt: new Date(Date.now() - 120_000).toISOString() }));
    await drain();
    expect((await t.request({ url: '/api/v1/billing/orders/ord-sus' })).json.suspendRequested).toBe(true);
    // Another customer's event about this order changes nothing.
    await post(event('order.unsuspended', { id: 'ord-sus', customer: 'cus-intruder' }));
    await drain();
    expect((await t.request({ url: '/api/v1/billing/orders/ord-sus' })).json.suspendRequested).toBe(true);
  });

  it('backorders a paid VPS order while no hypervisor has room, and tells billing', async () => {
    expect((await t.request({ method: 'PUT', url: '/api/v1/vps/images/debian-12', body: { os: 'debian 12', file: 'debian-12.qcow2', url: 'https://images.example/debian-12.qcow2', sha256: 'd'.repeat(64) } })).status).toBe(201);
    await post(event('order.paid', { id: 'ord-vps', plan: 'vps-1' }));
    await drain();
    expect((await t.request({ url: '/api/v1/billing/orders/ord-vps' })).json).toMatchObject({ state: 'backordered', kind: 'vps', vmId: null });
    // An image that is no longer usable fails the order (billing told why).
    await t.request({ method: 'PUT', url: '/api/v1/vps/images/old-os', body: { os: 'old', file: 'old.qcow2', enabled: true } });
    await post(event('order.paid', { id: 'ord-vps-old', plan: 'vps-1', options: { os: 'old-os' } }));
    await t.request({ method: 'PUT', url: '/api/v1/vps/images/old-os', body: { os: 'old', file: 'old.qcow2', enabled: false } });
    await drain();
    expect((await t.request({ url: '/api/v1/billing/orders/ord-vps-old' })).json).toMatchObject({ state: 'failed', lastError: expect.stringContaining('old-os is disabled') });
    expect(await count("work_tasks WHERE ref_id = 'ord-vps' AND state = 'open' AND kind = 'backorder'")).toBe(1);
  });
});

describe('colocation orders', () => {
  it('reserve rack units and power under the budgets, open intake tasks, and backorder what does not fit', async () => {
    // A 10U rack at lab2 with a 1000 W budget, one feed and PDU; units 1-2 already taken.
    const rack = (await t.request({ method: 'POST', url: '/api/v1/racks', body: { site: 'lab2', name: 'C01', heightU: 10, powerBudgetW: 1000 } })).json;
    const panel = (await t.request({ method: 'POST', url: '/api/v1/power-panels', body: { site: 'lab2', name: 'PP-C' } })).json;
    const feed = (await t.request({ method: 'POST', url: '/api/v1/power-feeds', body: { panelId: panel.id, rackId: rack.id, name: 'C01-A', amperage: 16 } })).json;
    expect((await t.request({ method: 'POST', url: '/api/v1/pdus', body: { feedId: feed.id, name: 'pdu-c01-a' } })).status).toBe(201);
    const switchModel = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'Switch2U', heightU: 2 } })).json.id;
    expect((await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab2', name: 'sw-c01', role: 'network', modelId: switchModel, placement: { rack: rack.id, position: 1, face: 'front' } } })).status).toBe(201);
    await t.request({ method: 'PUT', url: '/api/v1/billing/plans/colo-2u', body: { kind: 'colocation', spec: { units: 2, powerW: 300, sites: ['lab2'] } } });

    // Four at once: the rack has units for four, power for three.
    const bodies = Array.from({ length: 4 }, (_, i) => event('order.paid', { id: `ord-colo-${i}`, customer: `cus-c${i}`, plan: 'colo-2u' }));
    expect((await Promise.all(bodies.map((b) => post(b)))).every((a) => a.status === 202)).toBe(true);
    await drain(4);
    const rows = await query<{ id: string; state: string }>(t.db.url, "SELECT id, state FROM orders WHERE plan = 'colo-2u' ORDER BY id");
    expect(rows.filter((r) => r.state === 'active')).toHaveLength(3);
    expect(rows.filter((r) => r.state === 'backordered')).toHaveLength(1);
    const placed = await query<{ position: number; height_u: number; customer_id: string; allocated_w: number }>(
      t.db.url,
      "SELECT d.position, d.height_u, d.customer_id, pc.allocated_w FROM devices d JOIN power_connections pc ON pc.device_id = d.id WHERE d.rack_id = $1 AND d.role = 'colocation' ORDER BY d.position",
      [rack.id],
    );
    expect(placed.map((p) => [p.position, p.height_u, p.allocated_w])).toEqual([[3, 2, 300], [5, 2, 300], [7, 2, 300]]);
    expect(await count("work_tasks WHERE kind = 'intake' AND state = 'open' AND title LIKE '%rack C01%'")).toBe(3);
    const active = rows.find((r) => r.state === 'active')!;
    const msg = (await query<{ payload: any }>(t.db.url, "SELECT payload FROM billing_outbox WHERE order_id = $1 AND type = 'order.provisioned'", [active.id]))[0].payload;
    expect(msg.colocation).toMatchObject({ site: 'lab2', rack: 'C01', units: [expect.any(Number), expect.any(Number)], powerW: 300 });
    const utilisation = (await t.request({ url: `/api/v1/racks/${rack.id}/utilisation` })).json;
    expect(JSON.stringify(utilisation)).toContain('900');

    // Suspend, then terminate one: a person acts on site, billing is told.
    await post(event('order.suspended', { id: active.id, customer: (await t.request({ url: `/api/v1/billing/orders/${active.id}` })).json.customer }));
    await drain();
    expect((await t.request({ url: `/api/v1/billing/orders/${active.id}` })).json.state).toBe('suspended');
    await post(event('order.terminated', { id: active.id, customer: (await t.request({ url: `/api/v1/billing/orders/${active.id}` })).json.customer }));
    await drain();
    expect((await t.request({ url: `/api/v1/billing/orders/${active.id}` })).json.state).toBe('terminated');
    expect(await count("work_tasks WHERE kind = 'removal' AND ref_id = $1", [active.id])).toBe(1);
    expect(await count("billing_outbox WHERE order_id = $1 AND type IN ('order.suspended', 'order.terminated')", [active.id])).toBe(2);
  });
});

describe('plans', () => {
  it('are checked against their kind and listed', async () => {
    const bad = await t.request({ method: 'PUT', url: '/api/v1/billing/plans/p1', body: { kind: 'vps', spec: { vcpus: 0, ramMb: 1024, diskGb: 10 } } });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ field: 'spec.vcpus' });
    const wrongKind = await t.request({ method: 'PUT', url: '/api/v1/billing/plans/p1', body: { kind: 'dedicated', spec: { vcpus: 2 } } });
    expect(wrongKind.json.error.field).toBe('spec');
    expect((await t.request({ method: 'PUT', url: '/api/v1/billing/plans/bad%20code', body: { kind: 'vps', spec: { vcpus: 1, ramMb: 1024, diskGb: 10 } } })).json.error.field).toBe('code');
    const ok = await t.request({ method: 'PUT', url: '/api/v1/billing/plans/p1', body: { kind: 'dedicated', spec: { minRamGb: 64 } } });
    expect(ok.json).toMatchObject({ code: 'p1', kind: 'dedicated', spec: { minRamGb: 64, diskLayout: 'single', defaultOs: 'debian-12' } });
    expect((await t.request({ method: 'PUT', url: '/api/v1/billing/plans/p1', body: { kind: 'dedicated', spec: { minRamGb: 128 } } })).status).toBe(200);
    expect((await t.request({ url: '/api/v1/billing/plans' })).json.map((p: { code: string }) => p.code)).toContain('p1');
    expect((await t.request({ method: 'DELETE', url: '/api/v1/billing/plans/p1' })).status).toBe(204);
    expect((await t.request({ url: '/api/v1/billing/plans/p1' })).status).toBe(404);
  });
});

describe('an order from payment to termination, with the fake BMC', () => {
  let runner: JobRunner;
  beforeAll(async () => {
    // Earlier tests left provisioning jobs nobody will finish: end them first.
    const jobs = t.app.get(JobService);
    for (const j of (await jobs.list({}, 500)).items) if (j.state === 'queued' || j.state === 'running') await jobs.cancel(j.id);
    runner = new JobRunner(t.app.get(Database), t.app.get(JobRepository), t.app.get(JobRegistry), t.app.get(JobQueue), pino({ level: 'silent' }), { allSiteCodes: async () => ['lab', 'lab2'], heartbeatMs: 200, staleAfterSeconds: 3 });
    await runner.start();
    processor.start();
  });
  afterAll(async () => {
    await processor.stop();
    await runner?.stop();
  });

  it('installs, grants IPKVM access, tells billing; suspends, unsuspends and terminates', async () => {
    const id = await server(otherModelId, 'lab2');
    const fake = t.app.get(BmcDrivers).get('fake') as FakeBmcDriver;
    const jobs = t.app.get(JobService);
    const install = t.app.get(InstallService);
    const paid = event('order.paid', { id: 'ord-full', customer: 'cus-full', plan: 'dedi-small', options: { hostname: 'full.example.com', os: 'rocky-9' } });
    expect((await post(paid)).status).toBe(202);
    const provisioning = await until(() => t.request({ url: '/api/v1/billing/orders/ord-full' }), (r) => r.json?.jobId !== undefined && r.json?.serverId === id);
    const jobId = provisioning.json.jobId;
    await until(() => jobs.get(jobId), (j) => j.tasks!.find((x) => x.name === 'wait-for-installer')!.state === 'waiting', 30_000);
    expect(fake.machine(id).boot).toMatchObject({ device: 'pxe', once: true });
    await install.callback(jobId, await install.callbackToken(jobId), 'done', 'installed');
    const done = await until(() => jobs.get(jobId), (j) => j.state === 'succeeded' || j.state === 'failed', 30_000);
    expect(done.error).toBeNull();
    expect(done.tasks!.map((x) => x.name)).toEqual(['stage-image', 'mark-deploying', 'power-off', 'pxe-once', 'power-on', 'wait-for-installer', 'boot-from-disk', 'wait-for-first-boot', 'mark-active', 'console-access', 'notify']);
    expect((await t.request({ url: '/api/v1/billing/orders/ord-full' })).json.state).toBe('active');
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('active');

    // The billing system got order.provisioned, signed, with the access details and the passwords.
    const provisioned = await until(async () => received.find((r) => r.body.type === 'order.provisioned' && r.body.order.id === 'ord-full'), (r) => !!r);
    expect(provisioned!.ok).toBe(true);
    const msg = provisioned!.body;
    expect(msg).toMatchObject({
      id: expect.any(String),
      order: { id: 'ord-full', customer: 'cus-full', plan: 'dedi-small' },
      service: { hostname: 'full.example.com', os: 'rocky-9', ipv4: expect.stringMatching(/^10\.9\./), site: 'lab2', rootPassword: expect.stringMatching(/^[A-Za-z0-9]{20}$/) },
      ipkvm: { host: '127.0.0.2', username: expect.stringMatching(/^rs-/), password: expect.any(String), consoleUrl: expect.stringContaining('/console/') },
    });
    // The BMC has that account; the API shows the message without its secrets.
    expect(fake.machine(id).users.some((u) => u.name === msg.ipkvm.username && u.enabled && u.password === msg.ipkvm.password)).toBe(true);
    // Recorded as delivered once the 2xx is in (the receiver may see it a moment before).
    const shown = await until(async () => (await t.request({ url: '/api/v1/billing/outbox?order=ord-full' })).json.items.find((m: { type: string }) => m.type === 'order.provisioned'), (m) => m?.state === 'delivered');
    expect(shown).toMatchObject({ state: 'delivered', hasSecrets: true, attempts: 1, lastStatus: 200 });
    expect(JSON.stringify(shown)).not.toContain(msg.ipkvm.password);
    expect(JSON.stringify(shown)).not.toContain(msg.service.rootPassword);
    // The password the installer got is only a hash of the one billing got.
    const [params] = await query<{ p: { rootPasswordHash: string } }>(t.db.url, 'SELECT params AS p FROM jobs WHERE id = $1', [jobId]);
    expect(params.p.rootPasswordHash).toMatch(/^\$6\$/);
    expect(JSON.stringify(await query(t.db.url, 'SELECT * FROM orders'))).not.toContain(msg.service.rootPassword);

    // Suspended: powered off, access revoked.
    await post(event('order.suspended', { id: 'ord-full', customer: 'cus-full' }));
    await until(() => t.request({ url: '/api/v1/billing/orders/ord-full' }), (r) => r.json.state === 'suspended', 30_000);
    expect(fake.machine(id).power).toBe('off');
    expect(fake.machine(id).users.some((u) => u.name === msg.ipkvm.username && u.enabled)).toBe(false);
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('suspended');
    await until(async () => received.find((r) => r.body.type === 'order.suspended' && r.body.order.id === 'ord-full'), (r) => !!r);

    // Unsuspended: powered on, new access.
    await post(event('order.unsuspended', { id: 'ord-full', customer: 'cus-full' }));
    await until(() => t.request({ url: '/api/v1/billing/orders/ord-full' }), (r) => r.json.state === 'active', 30_000);
    expect(fake.machine(id).power).toBe('on');
    const back = await until(async () => received.find((r) => r.body.type === 'order.unsuspended' && r.body.order.id === 'ord-full'), (r) => !!r);
    expect(back!.body.ipkvm).toMatchObject({ username: expect.stringMatching(/^rs-/), password: expect.any(String) });

    // Terminated: access revoked, powered off, billing told; a wipe job network-boots the wipe
    // image, and once it reports the disks clear the server is back in stock.
    await post(event('order.terminated', { id: 'ord-full', customer: 'cus-full' }));
    await until(() => t.request({ url: '/api/v1/billing/orders/ord-full' }), (r) => r.json.state === 'terminated', 30_000);
    expect(fake.machine(id).users.filter((u) => u.name.startsWith('rs-') && u.enabled)).toEqual([]);
    await until(async () => received.find((r) => r.body.type === 'order.terminated' && r.body.order.id === 'ord-full'), (r) => !!r);
    const wipe = await until(async () => (await jobs.list({ serverId: id, kind: 'wipe' }, 5)).items[0], (j) => !!j, 30_000);
    await until(() => jobs.get(wipe.id), (j) => j.tasks!.find((x) => x.name === 'wait-for-wipe')!.state === 'waiting', 30_000);
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('wiping');
    expect(fake.machine(id).boot).toMatchObject({ device: 'pxe', once: true });
    await install.callback(wipe.id, await install.callbackToken(wipe.id), 'done', 'wiped (quick) sda:457862MiB sdb:457862MiB');
    const wiped = await until(() => jobs.get(wipe.id), (j) => j.state === 'succeeded' || j.state === 'failed', 30_000);
    expect(wiped.tasks!.map((x) => `${x.name}:${x.state}`)).toEqual(['mark-wiping:succeeded', 'power-off:succeeded', 'pxe-once:succeeded', 'power-on:succeeded', 'wait-for-wipe:succeeded', 'boot-from-disk:succeeded', 'mark-available:succeeded']);
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('available');
    expect((await jobs.logs(wipe.id)).map((l) => l.message)).toContain('disk wipe finished: wiped (quick) sda:457862MiB sdb:457862MiB');
  }, 90_000);

  it('delivers the order as provisioned with console: failed when IPKVM access fails after the install, tells billing with its own event and opens a task', async () => {
    const id = await server(otherModelId, 'lab2');
    const fake = t.app.get(BmcDrivers).get('fake') as FakeBmcDriver;
    const jobs = t.app.get(JobService);
    const install = t.app.get(InstallService);
    // Only this one can be picked.
    const others = (await query<{ id: string }>(t.db.url, "UPDATE devices SET maintenance = true WHERE lifecycle = 'available' AND NOT maintenance AND id <> $1 RETURNING id", [id])).map((r) => r.id);
    expect((await post(event('order.paid', { id: 'ord-noconsole', customer: 'cus-nc', plan: 'dedi-small', options: { os: 'rocky-9', sshKeys: [KEY] } }))).status).toBe(202);
    const provisioning = await until(() => t.request({ url: '/api/v1/billing/orders/ord-noconsole' }), (r) => r.json?.jobId !== undefined && r.json?.serverId === id);
    const jobId = provisioning.json.jobId;
    await until(() => jobs.get(jobId), (j) => j.tasks!.find((x) => x.name === 'wait-for-installer')!.state === 'waiting', 30_000);
    // The BMC was fine when the server was picked; by the console step it no longer is.
    fake.machine(id).privilegeUnsafe = true;
    await install.callback(jobId, await install.callbackToken(jobId), 'done', 'installed');
    const done = await until(() => jobs.get(jobId), (j) => j.state === 'succeeded' || j.state === 'failed', 30_000);
    expect(done).toMatchObject({ state: 'succeeded', error: null });
    expect((await t.request({ url: '/api/v1/billing/orders/ord-noconsole' })).json.state).toBe('active');
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('active');
    const failed = await until(async () => received.find((r) => r.body.type === 'order.console_failed' && r.body.order.id === 'ord-noconsole'), (r) => !!r);
    expect(failed!.body.console).toEqual({ status: 'failed', reason: expect.stringContaining('does not enforce privilege limits') });
    const provisioned = await until(async () => received.find((r) => r.body.type === 'order.provisioned' && r.body.order.id === 'ord-noconsole'), (r) => !!r);
    expect(provisioned!.body.console).toEqual({ status: 'failed', reason: expect.any(String) });
    expect(provisioned!.body.ipkvm).toBeUndefined();
    expect(received.some((r) => r.body.type === 'order.failed' && r.body.order.id === 'ord-noconsole')).toBe(false);
    expect(await count("work_tasks WHERE ref_id = 'ord-noconsole' AND kind = 'automation-failure' AND state = 'open'")).toBe(1);
    expect(fake.machine(id).users.filter((u) => u.name.startsWith('rs-') && u.enabled)).toEqual([]);
    fake.machine(id).privilegeUnsafe = false;
    await query(t.db.url, 'UPDATE devices SET maintenance = false WHERE id = ANY ($1::uuid[])', [others]);
  }, 60_000);

  it('makes a paid VPS order a VM, tells billing, pauses and resumes it, and removes it on termination', async () => {
    const fake = t.app.get(HypervisorDrivers).get('fake') as FakeHypervisorDriver;
    const device = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: 'hv-billing', role: 'hypervisor', modelId } })).json;
    expect((await t.request({ method: 'POST', url: '/api/v1/hypervisors', body: { deviceId: device.id, driver: 'fake', ssh: { host: 'hv-billing.example', hostKeySha256: 'a'.repeat(64) }, capacity: { vcpus: 4, ramMb: 4096, storageGb: 100 } } })).status).toBe(201);
    const host = fake.host('hv-billing');
    const jobs = t.app.get(JobService);

    // The order backordered earlier gets the new room (filled oldest first, every 10 s).
    const filled = await until(() => t.request({ url: '/api/v1/billing/orders/ord-vps' }), (r) => r.json.state === 'active', 40_000, 200);
    expect(await count("work_tasks WHERE ref_id = 'ord-vps' AND state = 'open'")).toBe(0);
    expect((await t.request({ url: `/api/v1/vps/${filled.json.vmId}` })).json).toMatchObject({ state: 'running', customer: 'cus-1', size: { vcpus: 1, ramMb: 1024, diskGb: 20 } });

    // An image that does not exist is refused at the door.
    expect((await post(event('order.paid', { id: 'ord-vps2', customer: 'cus-vps', plan: 'vps-1', options: { os: 'windows-11' } }))).json.error).toMatchObject({ field: 'order.options.os' });
    expect((await post(event('order.paid', { id: 'ord-vps2', customer: 'cus-vps', plan: 'vps-1', options: { os: 'debian-12', hostname: 'shop.example.com', sshKeys: [KEY] } }))).status).toBe(202);
    const active = await until(() => t.request({ url: '/api/v1/billing/orders/ord-vps2' }), (r) => r.json.state === 'active' || r.json.state === 'failed', 30_000, 200);
    expect(active.json).toMatchObject({ state: 'active', kind: 'vps', vmId: expect.any(String), lastError: null });
    const job = await jobs.get(active.json.jobId);
    expect(job.tasks!.map((x) => x.name)).toEqual(['mark-creating', 'fetch-image', 'create-disk', 'write-seed', 'define', 'start', 'mark-running', 'notify']);
    const vmUrl = `/api/v1/vps/${active.json.vmId}`;
    const vm = (await t.request({ url: vmUrl })).json;
    expect(vm).toMatchObject({ state: 'running', hostname: 'shop.example.com', baseImage: 'debian-12', customer: 'cus-vps' });
    expect(JSON.parse(host.files.get(`/pool/default/${vm.name}-seed.iso`)!)['user-data']).toContain(KEY);
    const provisioned = await until(async () => received.find((r) => r.body.type === 'order.provisioned' && r.body.order.id === 'ord-vps2'), (r) => !!r);
    expect(provisioned!.body).toMatchObject({ order: { id: 'ord-vps2', plan: 'vps-1' }, service: { vm: vm.name, vmId: vm.id, site: 'lab', hostname: 'shop.example.com', image: 'debian-12', size: { vcpus: 1, ramMb: 1024, diskGb: 20 }, sshKeys: 1 } });
    expect(provisioned!.body.service.rootPassword).toBeUndefined();
    // The customer's console link (the VM's serial console in the web terminal) went along.
    expect(provisioned!.body.console).toMatchObject({ grantId: expect.any(String), url: expect.stringContaining(`/console/vps/${provisioned!.body.console.grantId}#`) });
    expect((await t.request({ url: `${vmUrl}/console-grants` })).json).toMatchObject([{ id: provisioned!.body.console.grantId, state: 'active', customer: 'cus-vps' }]);
    // The first order gave no key: a generated root password went to billing (and only a hash to the VM).
    const first = await until(async () => received.find((r) => r.body.type === 'order.provisioned' && r.body.order.id === 'ord-vps'), (r) => !!r);
    expect(first!.body.service.rootPassword).toMatch(/^[A-Za-z0-9]{20}$/);

    // Suspended: the VM is paused; unsuspended: resumed; billing told each time.
    await post(event('order.suspended', { id: 'ord-vps2', customer: 'cus-vps' }));
    await until(() => t.request({ url: '/api/v1/billing/orders/ord-vps2' }), (r) => r.json.state === 'suspended', 30_000);
    expect(host.domains.get(vm.name)!.state).toBe('paused');
    expect((await t.request({ url: vmUrl })).json.state).toBe('paused');
    expect((await t.request({ url: `${vmUrl}/console-grants` })).json[0]).toMatchObject({ state: 'revoked', revokeReason: 'order suspended' });
    await until(async () => received.find((r) => r.body.type === 'order.suspended' && r.body.order.id === 'ord-vps2'), (r) => !!r);
    await post(event('order.unsuspended', { id: 'ord-vps2', customer: 'cus-vps' }));
    await until(() => t.request({ url: '/api/v1/billing/orders/ord-vps2' }), (r) => r.json.state === 'active', 30_000);
    expect(host.domains.get(vm.name)!.state).toBe('running');
    const unsuspended = await until(async () => received.find((r) => r.body.type === 'order.unsuspended' && r.body.order.id === 'ord-vps2'), (r) => !!r);
    expect(unsuspended!.body.console.url).toContain('/console/vps/');

    // Terminated: the VM and its disks are gone, its capacity free, billing told.
    await post(event('order.terminated', { id: 'ord-vps2', customer: 'cus-vps' }));
    await until(() => t.request({ url: '/api/v1/billing/orders/ord-vps2' }), (r) => r.json.state === 'terminated', 30_000);
    expect(host.domains.has(vm.name)).toBe(false);
    expect([...host.files.keys()].filter((f) => f.includes(vm.name))).toEqual([]);
    expect((await t.request({ url: vmUrl })).json.state).toBe('deleted');
    expect((await t.request({ url: `/api/v1/hypervisors/${device.id}` })).json.used).toEqual({ vcpus: 1, ramMb: 1024, storageGb: 20 });
    await until(async () => received.find((r) => r.body.type === 'order.terminated' && r.body.order.id === 'ord-vps2'), (r) => !!r);
  }, 90_000);

  it('terminates a VPS order whose VM is still being made: the provisioning is cancelled, the VM removed, billing told', async () => {
    const host = (t.app.get(HypervisorDrivers).get('fake') as FakeHypervisorDriver).host('hv-billing');
    const jobs = t.app.get(JobService);
    const name = vmNameFor('ord-vps3');
    let release = () => {};
    host.holds.set(`start ${name}`, new Promise<void>((r) => (release = r)));
    await post(event('order.paid', { id: 'ord-vps3', customer: 'cus-vps3', plan: 'vps-1', options: { sshKeys: [KEY] } }));
    const provisioning = await until(() => t.request({ url: '/api/v1/billing/orders/ord-vps3' }), (r) => !!r.json.jobId, 30_000);
    const jobId = provisioning.json.jobId;
    await until(() => jobs.get(jobId), (j) => j.tasks!.find((x) => x.name === 'start')!.state === 'running', 30_000);
    // The removal of what the provisioning made is held too: the cancel is seen within a heartbeat.
    let releaseRemove = () => {};
    host.holds.set(`remove ${name}`, new Promise<void>((r) => (releaseRemove = r)));
    await post(event('order.terminated', { id: 'ord-vps3', customer: 'cus-vps3' }));
    // The provisioning is asked to stop; the order is terminating until it has removed what it made.
    await until(() => jobs.get(jobId), (j) => j.cancelRequested, 30_000);
    expect((await t.request({ url: '/api/v1/billing/orders/ord-vps3' })).json.state).toBe('terminating');
    release();
    releaseRemove();
    host.holds.clear();
    await until(() => t.request({ url: '/api/v1/billing/orders/ord-vps3' }), (r) => r.json.state === 'terminated', 30_000, 200);
    expect((await jobs.get(jobId)).state).toBe('cancelled');
    expect((await t.request({ url: `/api/v1/vps/${provisioning.json.vmId}` })).json.state).toBe('failed');
    expect(host.domains.has(name)).toBe(false);
    await until(async () => received.find((r) => r.body.type === 'order.terminated' && r.body.order.id === 'ord-vps3'), (r) => !!r);
    expect(received.some((r) => r.body.type === 'order.provisioned' && r.body.order.id === 'ord-vps3')).toBe(false);
    const hypervisorId = (await t.request({ url: `/api/v1/vps/${provisioning.json.vmId}` })).json.hypervisorId;
    expect((await t.request({ url: `/api/v1/hypervisors/${hypervisorId}` })).json.used).toEqual({ vcpus: 1, ramMb: 1024, storageGb: 20 });
  }, 60_000);

  it('holds no transaction open while a slow billing system answers', async () => {
    const outbox = t.app.get(OutboxService);
    billingDelayMs = 1500;
    try {
      const msg = await outbox.add('ord-slow', 'order.failed', { order: { id: 'ord-slow' }, reason: 'test' });
      await until(async () => received.find((r) => r.body.id === msg.id), (r) => !!r, 10_000, 20);
      // The billing system has the message and has not answered yet: no session of ours waits in a transaction.
      const [idle] = await query<{ n: string }>(t.db.url, "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'");
      expect(Number(idle.n)).toBe(0);
      expect((await outbox.get(msg.id)).state).toBe('pending');
      await until(() => outbox.get(msg.id), (m) => m.state === 'delivered', 10_000);
    } finally {
      billingDelayMs = 0;
    }
  });

  it('keeps an unacknowledged message and retries it; a replay sends it again', async () => {
    const outbox = t.app.get(OutboxService);
    answerBilling = 500;
    const msg = await outbox.add('ord-retry', 'order.failed', { order: { id: 'ord-retry' }, reason: 'test' });
    await until(() => outbox.get(msg.id), (m) => m.attempts >= 1, 10_000);
    const failed = await outbox.get(msg.id);
    expect(failed).toMatchObject({ state: 'pending', lastStatus: 500, lastError: 'the billing system answered 500' });
    expect(new Date(failed.nextAttemptAt!).getTime()).toBeGreaterThan(Date.now());
    answerBilling = 200;
    await t.request({ method: 'POST', url: `/api/v1/billing/outbox/${msg.id}/replay` });
    await until(() => outbox.get(msg.id), (m) => m.state === 'delivered', 10_000);
    expect(received.filter((r) => r.body.id === msg.id)).toHaveLength(2);
  });
});

describe('racksmith billing simulate', () => {
  it('sends a signed event to a running racksmith, which stores and processes it', async () => {
    const { runCli, startServe } = await import('../support/cli');
    const env = { DATABASE_URL: t.db.url, RACKSMITH_SECRET_KEY: '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', RACKSMITH_INVENTORY_SEED: '', RACKSMITH_BILLING_SECRETS: SECRET };
    const served = await startServe(env, ['--role', 'api']);
    try {
      // serve loaded the shipped plans.
      expect((await t.request({ url: '/api/v1/billing/plans/dedi-e2288g' })).json).toMatchObject({ kind: 'dedicated', spec: { hardwareModel: 'Supermicro/SYS-5019C-MR' } });
      const args = ['billing', 'simulate', 'paid', '--plan', 'dedi-e2288g', '--os', 'debian-12', '--ssh-key', KEY, '--order', 'ord-cli', '--event-id', 'evt-cli-1', '--occurred-at', new Date().toISOString(), '--url', served.url];
      const sent = await runCli(args, env);
      expect(sent.code).toBe(0);
      expect(JSON.parse(sent.stdout)).toMatchObject({ status: 202, answer: { eventId: 'evt-cli-1', orderId: 'ord-cli', received: true } });
      // Redelivered: the same answer.
      const again = await runCli(args, env);
      expect(JSON.parse(again.stdout)).toMatchObject({ status: 202, answer: { eventId: 'evt-cli-1' } });
      // The serving process processed it: no Supermicro in this inventory, so it is backordered.
      await until(() => t.request({ url: '/api/v1/billing/orders/ord-cli' }), (r) => r.json?.state === 'backordered', 15_000);
      const wrong = await runCli(['billing', 'simulate', 'suspended', '--order', 'ord-cli', '--url', served.url], { ...env, RACKSMITH_BILLING_SECRETS: 'some-other-secret-entirely' });
      expect(wrong.code).toBe(1);
      expect(JSON.parse(wrong.stdout)).toMatchObject({ status: 401, answer: { error: { code: 'bad_signature' } } });
      const usage = await runCli(['billing', 'simulate', 'paid', '--url', served.url], env);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toContain('give --plan CODE');
    } finally {
      expect(await served.stop('SIGTERM')).toBe(0);
    }
  }, 90_000);
});
