import { startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';
import { PlacementService } from '../../src/modules/vps/placement.service';
import type { Need } from '../../src/modules/vps/vps.repository';

const HOST_KEY = 'a'.repeat(64);

let t: TestApp;
let placement: PlacementService;
let modelId: string;
let siteId: string;

beforeAll(async () => {
  t = await startTestApp();
  placement = t.app.get(PlacementService);
  siteId = (await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'vlab', name: 'VPS lab' } })).json.id;
  modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'HV', heightU: 1 } })).json.id;
}, 60_000);
afterAll(() => t?.close());

let n = 0;
async function hypervisor(capacity: { vcpus: number; ramMb: number; storageGb: number }, overcommit = { cpu: 1, ram: 1, storage: 1 }, state = 'enabled'): Promise<{ id: string; name: string }> {
  const name = `hv-${++n}`;
  const device = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'vlab', name, role: 'hypervisor', modelId } })).json;
  const res = await t.request({ method: 'POST', url: '/api/v1/hypervisors', body: { deviceId: device.id, ssh: { host: '127.0.0.1', port: 2222, hostKeySha256: HOST_KEY }, capacity, overcommit, state } });
  expect(res.status).toBe(201);
  return { id: device.id, name };
}
const need = (o: Partial<Need> = {}): Need => ({ vcpus: 1, ramMb: 1024, diskGb: 10, customer: 'cus-1', antiAffinity: false, siteIds: [siteId], ...o });
let vmN = 0;
const place = (o: Partial<Need> = {}) => placement.place(need(o), { name: `vm-${++vmN}` });
const drain = async () => {
  // Earlier tests' hosts out of the way.
  for (const h of (await t.request({ url: '/api/v1/hypervisors' })).json) await t.request({ method: 'PATCH', url: `/api/v1/hypervisors/${h.id}`, body: { state: 'draining' } });
};

describe('hypervisors', () => {
  it('are registered from a hypervisor device, with the key sealed and the host key pinned; bad input names the field', async () => {
    const { id } = await hypervisor({ vcpus: 8, ramMb: 16384, storageGb: 500 }, { cpu: 4, ram: 1.5, storage: 1 });
    const view = (await t.request({ url: `/api/v1/hypervisors/${id}` })).json;
    expect(view).toMatchObject({ state: 'enabled', ssh: { host: '127.0.0.1', port: 2222, user: 'root', keySet: false, hostKeySha256: HOST_KEY }, capacity: { vcpus: 8 }, free: { vcpus: 32, ramMb: 24576, storageGb: 500 }, vms: 0 });
    const server = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'vlab', name: 'not-hv', role: 'rented-server', modelId } })).json.id;
    const wrongRole = await t.request({ method: 'POST', url: '/api/v1/hypervisors', body: { deviceId: server, ssh: { host: 'h', hostKeySha256: HOST_KEY }, capacity: { vcpus: 1, ramMb: 1024, storageGb: 10 } } });
    expect(wrongRole.json.error).toMatchObject({ code: 'not_a_hypervisor', field: 'deviceId' });
    const noKey = await t.request({ method: 'POST', url: '/api/v1/hypervisors', body: { deviceId: server, ssh: { host: 'h', hostKeySha256: 'SHA256:abc' }, capacity: { vcpus: 1, ramMb: 1024, storageGb: 10 } } });
    expect(noKey.json.error).toMatchObject({ code: 'validation_failed', field: 'ssh.hostKeySha256' });
    expect((await t.request({ method: 'POST', url: '/api/v1/hypervisors', body: { deviceId: id, ssh: { host: 'h', hostKeySha256: HOST_KEY }, capacity: { vcpus: 1, ramMb: 1024, storageGb: 10 } } })).json.error.code).toBe('already_registered');
  });
});

describe('placement', () => {
  beforeEach(drain);

  it('puts a VM where it fits best and books the host in the same transaction', async () => {
    const roomy = await hypervisor({ vcpus: 16, ramMb: 65536, storageGb: 1000 });
    const tight = await hypervisor({ vcpus: 4, ramMb: 4096, storageGb: 100 });
    const { vm, hypervisor: host } = await place({ ramMb: 4000 });
    expect(host.device_id).toBe(tight.id);
    expect(vm).toMatchObject({ state: 'placed', hypervisor_id: tight.id, ram_mb: 4000 });
    expect((await t.request({ url: `/api/v1/hypervisors/${tight.id}` })).json).toMatchObject({ used: { vcpus: 1, ramMb: 4000, storageGb: 10 }, vms: 1 });
    // The next one no longer fits there.
    expect((await place({ ramMb: 4000 })).hypervisor.device_id).toBe(roomy.id);
  });

  it('gives draining and down hosts nothing, and says what is missing where', async () => {
    const h = await hypervisor({ vcpus: 2, ramMb: 2048, storageGb: 50 });
    await hypervisor({ vcpus: 64, ramMb: 262144, storageGb: 5000 }, undefined, 'draining');
    await hypervisor({ vcpus: 64, ramMb: 262144, storageGb: 5000 }, undefined, 'down');
    const err = await place({ vcpus: 2, ramMb: 4096, diskGb: 20 }).catch((e) => e);
    expect(err).toMatchObject({ code: 'no_capacity', status: 409, details: { closest: { hypervisor: h.name, lacks: { vcpus: 0, ramMb: 2048, diskGb: 0 } } } });
    expect(err.message).toContain(`the closest, ${h.name}, lacks 2048 MB RAM`);
    await t.request({ method: 'PATCH', url: `/api/v1/hypervisors/${h.id}`, body: { state: 'down' } });
    const none = await place().catch((e) => e);
    expect(none.message).toMatch(/no enabled hypervisor can take .* \(\d+ draining, \d+ down\)/);
  });

  it('keeps a customer\'s VMs apart when asked', async () => {
    const a = await hypervisor({ vcpus: 8, ramMb: 8192, storageGb: 100 });
    const b = await hypervisor({ vcpus: 8, ramMb: 16384, storageGb: 100 });
    const first = await place({ customer: 'cus-aa', antiAffinity: true });
    const second = await place({ customer: 'cus-aa', antiAffinity: true });
    expect(new Set([first.hypervisor.device_id, second.hypervisor.device_id])).toEqual(new Set([a.id, b.id]));
    const third = await place({ customer: 'cus-aa', antiAffinity: true }).catch((e) => e);
    expect(third.message).toContain('already run a VM of customer cus-aa (anti-affinity)');
    // Without the wish, it fits.
    expect((await place({ customer: 'cus-aa' })).vm.state).toBe('placed');
  });

  it('never overbooks: 50 placements at once onto nearly full hosts', async () => {
    // Five hosts with room for 2, 3, 4, 5 and 6 VMs of 1 vCPU / 1 GiB / 10 GB (RAM is what runs out).
    const hosts = await Promise.all([2, 3, 4, 5, 6].map((k) => hypervisor({ vcpus: 16, ramMb: 1024 * k + 512, storageGb: 1000 })));
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => place({ customer: `cus-${Math.random()}` })));
    const ok = results.filter((r) => r.status === 'fulfilled');
    expect(ok).toHaveLength(20);
    for (const r of results.filter((x) => x.status === 'rejected')) expect((r as PromiseRejectedResult).reason.code).toBe('no_capacity');
    for (const h of hosts) {
      const [row] = await query<{ used_ram_mb: number; ram_mb: number; vms: string; booked: string }>(
        t.db.url,
        "SELECT h.used_ram_mb, h.ram_mb, (SELECT count(*) FROM vms WHERE hypervisor_id = h.device_id) AS vms, (SELECT coalesce(sum(ram_mb), 0) FROM vms WHERE hypervisor_id = h.device_id) AS booked FROM hypervisors h WHERE device_id = $1",
        [h.id],
      );
      expect(row.used_ram_mb).toBeLessThanOrEqual(row.ram_mb);
      expect(Number(row.booked)).toBe(row.used_ram_mb);
    }
    expect(Number((await query<{ n: string }>(t.db.url, 'SELECT count(*) AS n FROM vms WHERE hypervisor_id = ANY ($1)', [hosts.map((h) => h.id)]))[0].n)).toBe(20);
  });

  it('refuses, in the database, a capacity below what the VMs use', async () => {
    const h = await hypervisor({ vcpus: 4, ramMb: 4096, storageGb: 100 });
    await place({ ramMb: 3072 });
    const shrink = await t.request({ method: 'PATCH', url: `/api/v1/hypervisors/${h.id}`, body: { capacity: { ramMb: 2048 } } });
    expect(shrink.status).toBe(409);
    expect(shrink.json.error).toMatchObject({ code: 'capacity_in_use', field: 'capacity' });
    const del = await t.request({ method: 'DELETE', url: `/api/v1/hypervisors/${h.id}` });
    expect(del.json.error.code).toBe('hypervisor_in_use');
  });
});
