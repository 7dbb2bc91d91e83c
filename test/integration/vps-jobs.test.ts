import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parse as parseYaml } from 'yaml';
import WebSocket from 'ws';
import { BOOTSTRAP, SECRET_KEY, startTestApp, type TestApp } from '../support/app';
import { freePort, runCli } from '../support/cli';
import { until } from '../support/wait';
import { Database } from '../../src/database/database';
import { FakeHypervisorDriver } from '../../src/drivers/hypervisor/fake-hypervisor.driver';
import { JobQueue } from '../../src/jobs/job-queue';
import { JobRegistry } from '../../src/jobs/job-registry';
import { JobRepository } from '../../src/jobs/job.repository';
import { JobRunner } from '../../src/jobs/job-runner';
import { JobService } from '../../src/jobs/job.service';
import { HypervisorDrivers } from '../../src/modules/vps/hypervisor-drivers';

/** VM create and delete as jobs, with the fake hypervisor driver; an unreachable host through the real SSH transport. */
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl customer@example';
const KEY2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3Wq2gP8wqXg8k9bXq3l0uG9Zq7vZb8eZ2a9c1aQ0Zs other@example';
let PRIVATE = '';

let t: TestApp;
let runner: JobRunner;
let jobs: JobService;
let modelId: string;

beforeAll(async () => {
  const keys = mkdtempSync(join(tmpdir(), 'racksmith-key-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keys, 'k')]);
  PRIVATE = readFileSync(join(keys, 'k'), 'utf8');
  rmSync(keys, { recursive: true, force: true });
  t = await startTestApp();
  jobs = t.app.get(JobService);
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'vj', name: 'VPS jobs' } });
  modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'HV', heightU: 1 } })).json.id;
  const image = await t.request({ method: 'PUT', url: '/api/v1/vps/images/debian-12', body: { os: 'debian 12', file: 'debian-12-generic.qcow2', url: 'https://images.example/debian-12-generic.qcow2', sha256: 'e'.repeat(64), minDiskGb: 4 } });
  expect(image.status).toBe(201);
  runner = new JobRunner(t.app.get(Database), t.app.get(JobRepository), t.app.get(JobRegistry), t.app.get(JobQueue), pino({ level: 'silent' }), { allSiteCodes: async () => ['vj'], heartbeatMs: 200, staleAfterSeconds: 3 });
  await runner.start();
}, 60_000);
afterAll(async () => {
  await runner?.stop();
  await t?.close();
});

let n = 0;
async function hypervisor(body: Record<string, unknown>): Promise<{ id: string; name: string }> {
  const name = `hvj-${++n}`;
  const device = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'vj', name, role: 'hypervisor', modelId } })).json;
  const res = await t.request({ method: 'POST', url: '/api/v1/hypervisors', body: { deviceId: device.id, capacity: { vcpus: 8, ramMb: 8192, storageGb: 200 }, ...body } });
  expect(res.status).toBe(201);
  return { id: device.id, name };
}
const settled = (id: string) => until(() => jobs.get(id), (j) => ['succeeded', 'failed', 'cancelled'].includes(j.state), 30_000);
const hv = (id: string) => t.request({ url: `/api/v1/hypervisors/${id}` }).then((r) => r.json);

describe('VPS jobs', () => {
  it('creates a VM on its hypervisor (disk, seed, domain, start) and deletes it, giving the capacity back', async () => {
    const host = await hypervisor({ driver: 'fake', ssh: { host: 'hv.example', hostKeySha256: 'a'.repeat(64) } });
    const bad = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name: 'Bad Name', customer: 'c', vcpus: 1, ramMb: 1024, diskGb: 10, baseImage: 'debian-12', sshKeys: [KEY] } });
    expect(bad.json.error).toMatchObject({ code: 'validation_failed', field: 'name' });
    const big = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name: 'too-big', customer: 'c', vcpus: 2, ramMb: 65536, diskGb: 10, baseImage: 'debian-12', sshKeys: [KEY] } });
    expect(big.status).toBe(409);
    expect(big.json.error).toMatchObject({ code: 'no_capacity', details: { closest: { hypervisor: host.name, lacks: { ramMb: 65536 - 8192 } } } });

    const res = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name: 'web-1', hostname: 'web-1.example.com', customer: 'cus-v', vcpus: 2, ramMb: 2048, diskGb: 40, baseImage: 'debian-12', sshKeys: [KEY] } });
    expect(res.status).toBe(202);
    expect(res.json.vm).toMatchObject({ name: 'web-1', state: 'placed', hypervisorId: host.id });
    const done = await settled(res.json.job.id);
    expect(done.state).toBe('succeeded');
    expect(done.tasks!.map((x) => x.name)).toEqual(['mark-creating', 'fetch-image', 'create-disk', 'write-seed', 'define', 'start', 'mark-running']);
    expect((await t.request({ url: `/api/v1/vps/${res.json.vm.id}` })).json.state).toBe('running');
    const fake = t.app.get(HypervisorDrivers).get('fake') as FakeHypervisorDriver;
    const machine = fake.host(host.name);
    expect(machine.domains.get('web-1')).toMatchObject({ state: 'running' });
    expect(machine.domains.get('web-1')!.xml).toContain('<memory unit=\'MiB\'>2048</memory>');
    expect(machine.files.get('/pool/default/debian-12-generic.qcow2')).toBe('fetched from https://images.example/debian-12-generic.qcow2');
    expect(machine.files.get('/pool/default/web-1.qcow2')).toBe('overlay of debian-12-generic.qcow2, 40G');
    const seed = JSON.parse(machine.files.get('/pool/default/web-1-seed.iso')!);
    expect(seed['user-data']).toContain(KEY);
    expect((await hv(host.id)).used).toEqual({ vcpus: 2, ramMb: 2048, storageGb: 40 });

    // Power actions and an offline resize, each a job; a wrong state is a 409 naming it.
    const vmUrl = `/api/v1/vps/${res.json.vm.id}`;
    const act = async (action: string, body: Record<string, unknown> = {}) => {
      const r = await t.request({ method: 'POST', url: `${vmUrl}/actions`, body: { action, ...body } });
      if (r.status !== 202) return r.json;
      expect((await settled(r.json.id)).state).toBe('succeeded');
      return (await t.request({ url: vmUrl })).json;
    };
    expect((await act('start')).error).toMatchObject({ code: 'illegal_transition', details: { state: 'running' } });
    expect((await act('suspend')).state).toBe('paused');
    expect(machine.domains.get('web-1')!.state).toBe('paused');
    expect((await act('resume')).state).toBe('running');
    expect((await act('reboot')).state).toBe('running');
    const running = await t.request({ method: 'POST', url: `${vmUrl}/resize`, body: { vcpus: 4, ramMb: 4096, diskGb: 60 } });
    expect(running.json.error).toMatchObject({ code: 'illegal_transition', details: { state: 'running' } });
    expect((await act('stop', { force: true })).state).toBe('stopped');
    const tooBig = await t.request({ method: 'POST', url: `${vmUrl}/resize`, body: { vcpus: 4, ramMb: 16384, diskGb: 60 } });
    expect(tooBig.json.error).toMatchObject({ code: 'no_capacity' });
    const shrink = await t.request({ method: 'POST', url: `${vmUrl}/resize`, body: { vcpus: 1, ramMb: 1024, diskGb: 20 } });
    expect(shrink.json.error).toMatchObject({ code: 'validation_failed', field: 'diskGb' });
    const resize = await t.request({ method: 'POST', url: `${vmUrl}/resize`, body: { vcpus: 4, ramMb: 4096, diskGb: 60 } });
    expect(resize.status).toBe(202);
    expect((await settled(resize.json.id)).state).toBe('succeeded');
    expect((await t.request({ url: vmUrl })).json.size).toEqual({ vcpus: 4, ramMb: 4096, diskGb: 60 });
    expect((await hv(host.id)).used).toEqual({ vcpus: 4, ramMb: 4096, storageGb: 60 });
    expect((await act('start')).state).toBe('running');

    // Rebuild from another image with new keys: a fresh disk and a new cloud-init instance, same place and size.
    const rebuildUrl = `${vmUrl}/rebuild`;
    expect((await t.request({ method: 'POST', url: rebuildUrl, body: { baseImage: 'nope' , sshKeys: [KEY] } })).json.error).toMatchObject({ code: 'validation_failed', field: 'baseImage' });
    expect((await t.request({ method: 'POST', url: rebuildUrl, body: {} })).json.error).toMatchObject({ code: 'validation_failed', field: 'sshKeys' });
    await t.request({ method: 'PUT', url: '/api/v1/vps/images/rocky-9', body: { os: 'rocky 9', file: 'rocky-9.qcow2', url: 'https://images.example/rocky-9.qcow2', sha256: 'f'.repeat(64) } });
    const rebuild = await t.request({ method: 'POST', url: rebuildUrl, body: { baseImage: 'rocky-9', sshKeys: [KEY2] } });
    expect(rebuild.status).toBe(202);
    expect((await t.request({ method: 'POST', url: `${vmUrl}/actions`, body: { action: 'stop' } })).json.error.code).toBe('vm_busy');
    const rebuilt = await settled(rebuild.json.id);
    expect(rebuilt.state).toBe('succeeded');
    expect(rebuilt.tasks!.map((x) => x.name)).toEqual(['power-off', 'fetch-image', 'create-disk', 'write-seed', 'define', 'start', 'mark-running']);
    expect((await t.request({ url: vmUrl })).json).toMatchObject({ state: 'running', baseImage: 'rocky-9', size: { vcpus: 4, ramMb: 4096, diskGb: 60 } });
    expect(machine.files.get('/pool/default/web-1.qcow2')).toBe('overlay of rocky-9.qcow2, 60G');
    const reseed = JSON.parse(machine.files.get('/pool/default/web-1-seed.iso')!);
    expect(reseed['user-data']).toContain(KEY2);
    expect(reseed['user-data']).not.toContain(KEY);
    expect(reseed['meta-data']).toContain(`instance-id: ${res.json.vm.id}-${rebuild.json.id.slice(0, 8)}`);
    expect((await hv(host.id)).used).toEqual({ vcpus: 4, ramMb: 4096, storageGb: 60 });
    // An image VMs were made from is not deleted (disabled instead); the list knows the VM.
    expect((await t.request({ method: 'DELETE', url: '/api/v1/vps/images/rocky-9' })).json.error).toMatchObject({ code: 'image_in_use', details: { vms: 1 } });
    const mine = await t.request({ url: '/api/v1/vps?customer=cus-v&state=running' });
    expect(mine.json.items.map((v: { name: string }) => v.name)).toEqual(['web-1']);

    const del = await t.request({ method: 'DELETE', url: `/api/v1/vps/${res.json.vm.id}` });
    expect(del.status).toBe(202);
    expect((await settled(del.json.id)).state).toBe('succeeded');
    expect((await t.request({ url: `/api/v1/vps/${res.json.vm.id}` })).json.state).toBe('deleted');
    expect(machine.domains.has('web-1')).toBe(false);
    expect([...machine.files.keys()].filter((f) => f.includes('web-1'))).toEqual([]);
    expect((await hv(host.id)).used).toEqual({ vcpus: 0, ramMb: 0, storageGb: 0 });
    expect((await t.request({ method: 'DELETE', url: `/api/v1/vps/${res.json.vm.id}` })).json.error.code).toBe('vm_gone');
  });

  it('keeps base images through the API, refusing bad ones with the field at fault', async () => {
    const put = (name: string, body: Record<string, unknown>) => t.request({ method: 'PUT', url: `/api/v1/vps/images/${name}`, body });
    expect((await put('alma-9', { os: 'alma 9', file: 'alma.qcow2', url: 'https://images.example/alma.qcow2' })).json.error).toMatchObject({ code: 'validation_failed', field: 'sha256' });
    expect((await put('alma-9', { os: 'alma 9', file: '../etc/passwd' })).json.error).toMatchObject({ code: 'validation_failed', field: 'file' });
    expect((await put('alma-9', { os: 'alma 9', file: 'alma.qcow2', url: 'ftp://images.example/alma.qcow2', sha256: 'a'.repeat(64) })).json.error).toMatchObject({ code: 'validation_failed', field: 'url' });
    expect((await put('Bad Name', { os: 'alma 9', file: 'alma.qcow2' })).json.error).toMatchObject({ code: 'validation_failed', field: 'name' });
    const boot = { kernel: { file: 'vmlinuz' }, initrd: { file: 'initrd.gz', url: 'https://images.example/initrd.gz', sha256: 'b'.repeat(64) }, cmdline: 'console=ttyS0 quiet' };
    expect((await put('alma-9', { os: 'alma 9', file: 'alma.qcow2', minDiskGb: 10, boot })).status).toBe(201);
    expect((await put('alma-9', { os: 'alma 9', file: 'alma.qcow2', minDiskGb: 20, boot, enabled: false })).status).toBe(200);
    expect((await t.request({ url: '/api/v1/vps/images/alma-9' })).json).toMatchObject({ minDiskGb: 20, enabled: false, boot, vms: 0 });
    const disabled = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name: 'alma-1', customer: 'c', vcpus: 1, ramMb: 1024, diskGb: 30, baseImage: 'alma-9', sshKeys: [KEY] } });
    expect(disabled.json.error).toMatchObject({ code: 'validation_failed', field: 'baseImage' });
    await put('alma-9', { os: 'alma 9', file: 'alma.qcow2', minDiskGb: 20 });
    const small = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name: 'alma-1', customer: 'c', vcpus: 1, ramMb: 1024, diskGb: 10, baseImage: 'alma-9', sshKeys: [KEY] } });
    expect(small.json.error).toMatchObject({ code: 'validation_failed', field: 'diskGb' });
    expect((await t.request({ url: '/api/v1/vps/images' })).json.map((i: { name: string }) => i.name)).toEqual(expect.arrayContaining(['alma-9', 'debian-12']));
    expect((await t.request({ method: 'DELETE', url: '/api/v1/vps/images/alma-9' })).status).toBe(204);
    expect((await t.request({ url: '/api/v1/vps/images/alma-9' })).status).toBe(404);
  });

  it('syncs VM states with what the hypervisor says, leaving VMs a job works on to the job', async () => {
    const host = await hypervisor({ driver: 'fake', ssh: { host: 'hv-sync.example', hostKeySha256: 'a'.repeat(64) } });
    const make = async (name: string) => {
      const r = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name, customer: 'cus-sync', vcpus: 1, ramMb: 512, diskGb: 10, baseImage: 'debian-12', sshKeys: [KEY], site: 'vj' } });
      expect((await settled(r.json.job.id)).state).toBe('succeeded');
      return r.json.vm.id as string;
    };
    // Only this host takes new VMs for the moment.
    const others = (await t.request({ url: '/api/v1/hypervisors' })).json.filter((h: { id: string; state: string }) => h.id !== host.id && h.state === 'enabled');
    for (const o of others) await t.request({ method: 'PATCH', url: `/api/v1/hypervisors/${o.id}`, body: { state: 'draining' } });
    const [a, b] = [await make('sync-a'), await make('sync-b')];
    for (const o of others) await t.request({ method: 'PATCH', url: `/api/v1/hypervisors/${o.id}`, body: { state: 'enabled' } });
    const machine = (t.app.get(HypervisorDrivers).get('fake') as FakeHypervisorDriver).host(host.name);
    machine.domains.get('sync-a')!.state = 'shut off';
    machine.domains.delete('sync-b');
    machine.domains.set('handmade', { xml: '<domain/>', state: 'running' });
    const sync = await t.request({ method: 'POST', url: `/api/v1/hypervisors/${host.id}/sync` });
    expect(sync.status).toBe(200);
    expect(sync.json).toMatchObject({ error: null, vms: 2, unmanaged: ['handmade'] });
    expect(sync.json.changed).toEqual(expect.arrayContaining([
      { vmId: a, name: 'sync-a', from: 'running', to: 'stopped' },
      { vmId: b, name: 'sync-b', from: 'running', to: 'missing' },
    ]));
    expect((await t.request({ url: `/api/v1/vps/${b}` })).json).toMatchObject({ state: 'missing', lastError: expect.stringContaining('no longer has this VM') });
    const audit = await t.request({ url: `/api/v1/audit?targetId=${a}` });
    expect(audit.json.items.map((e: { action: string }) => e.action)).toContain('vps.state_sync');
    // Nothing new: nothing changes. A VM with a job in progress is left to its job.
    expect((await t.request({ method: 'POST', url: `/api/v1/hypervisors/${host.id}/sync` })).json.changed).toEqual([]);
    let release = () => {};
    machine.holds.set('start sync-a', new Promise<void>((r) => (release = r)));
    const start = await t.request({ method: 'POST', url: `/api/v1/vps/${a}/actions`, body: { action: 'start' } });
    await until(() => jobs.get(start.json.id), (j) => j.state === 'running');
    machine.domains.get('sync-a')!.state = 'paused';
    expect((await t.request({ method: 'POST', url: `/api/v1/hypervisors/${host.id}/sync` })).json.changed).toEqual([]);
    expect((await t.request({ url: `/api/v1/vps/${a}` })).json.state).toBe('stopped');
    release();
    machine.holds.clear();
    expect((await settled(start.json.id)).state).toBe('succeeded');
    expect((await t.request({ url: `/api/v1/vps/${a}` })).json.state).toBe('running');
    // A host that can't be asked keeps its VMs' states and shows why.
    machine.unreachable = true;
    const down = await t.request({ method: 'POST', url: `/api/v1/hypervisors/${host.id}/sync` });
    expect(down.json).toMatchObject({ error: expect.stringContaining('ECONNREFUSED'), changed: [] });
    expect((await hv(host.id)).sync).toMatchObject({ error: expect.stringContaining('ECONNREFUSED') });
    expect((await t.request({ url: `/api/v1/vps/${a}` })).json.state).toBe('running');
    machine.unreachable = false;
    const all = await t.request({ method: 'POST', url: '/api/v1/hypervisors/sync' });
    expect(all.json.find((r: { hypervisorId: string }) => r.hypervisorId === host.id)).toMatchObject({ error: null });
    expect((await hv(host.id)).sync).toMatchObject({ error: null, at: expect.any(String) });
  });

  it('gives VMs static addresses from their hypervisor\'s pool, and takes them back', async () => {
    const put = (name: string, body: Record<string, unknown>) => t.request({ method: 'PUT', url: `/api/v1/vps/ip-pools/${name}`, body });
    const net = { site: 'vj', network: '192.0.2.0/29', gateway: '192.0.2.1', dns: ['192.0.2.53'], firstAddress: '192.0.2.2', lastAddress: '192.0.2.3' };
    expect((await put('pool-a', { ...net, gateway: '198.51.100.1' })).json.error).toMatchObject({ code: 'validation_failed', field: 'gateway' });
    expect((await put('pool-a', { ...net, firstAddress: '192.0.2.1' })).json.error).toMatchObject({ code: 'validation_failed', field: 'firstAddress' });
    expect((await put('pool-a', { ...net, network: '192.0.2.0/33' })).json.error).toMatchObject({ code: 'validation_failed', field: 'network' });
    expect((await put('pool-a', net)).status).toBe(201);
    const others = (await t.request({ url: '/api/v1/hypervisors' })).json.filter((h: { state: string }) => h.state === 'enabled');
    for (const o of others) await t.request({ method: 'PATCH', url: `/api/v1/hypervisors/${o.id}`, body: { state: 'draining' } });
    expect((await t.request({ method: 'POST', url: '/api/v1/hypervisors', body: { deviceId: (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'vj', name: 'hv-nopool', role: 'hypervisor', modelId } })).json.id, driver: 'fake', ssh: { host: 'x', hostKeySha256: 'a'.repeat(64) }, ipPool: 'nope', capacity: { vcpus: 8, ramMb: 8192, storageGb: 200 } } })).json.error).toMatchObject({ field: 'ipPool' });
    const host = await hypervisor({ driver: 'fake', ssh: { host: 'hv-pool.example', hostKeySha256: 'a'.repeat(64) }, ipPool: 'pool-a' });
    expect(await hv(host.id)).toMatchObject({ ipPool: 'pool-a', freeAddresses: 2 });
    const make = async (name: string) => t.request({ method: 'POST', url: '/api/v1/vps', body: { name, customer: 'cus-ip', vcpus: 1, ramMb: 512, diskGb: 10, baseImage: 'debian-12', sshKeys: [KEY] } });
    const a = await make('ip-a');
    const b = await make('ip-b');
    expect([a.json.vm.ipv4, b.json.vm.ipv4]).toEqual(['192.0.2.2', '192.0.2.3']);
    for (const r of [a, b]) expect((await settled(r.json.job.id)).state).toBe('succeeded');
    const machine = (t.app.get(HypervisorDrivers).get('fake') as FakeHypervisorDriver).host(host.name);
    const netcfg = parseYaml(JSON.parse(machine.files.get('/pool/default/ip-a-seed.iso')!)['network-config']);
    expect(netcfg.ethernets.eth0).toMatchObject({ dhcp4: false, addresses: ['192.0.2.2/29'], routes: [{ to: 'default', via: '192.0.2.1' }], nameservers: { addresses: ['192.0.2.53'] } });
    // The pool is used up: the host takes no more VMs, and the 409 says why.
    const c = await make('ip-c');
    expect(c.json.error).toMatchObject({ code: 'no_capacity', details: { closest: { hypervisor: host.name, lacks: { address: 'a free address in pool pool-a' } } } });
    expect((await put('pool-a', { ...net, lastAddress: '192.0.2.2' })).json.error).toMatchObject({ code: 'addresses_in_use', field: 'firstAddress' });
    expect((await t.request({ method: 'DELETE', url: '/api/v1/vps/ip-pools/pool-a' })).json.error.code).toBe('pool_in_use');
    // Deleted: its address is free for the next VM.
    const del = await t.request({ method: 'DELETE', url: `/api/v1/vps/${a.json.vm.id}` });
    expect((await settled(del.json.id)).state).toBe('succeeded');
    expect((await t.request({ url: '/api/v1/vps/ip-pools/pool-a' })).json).toMatchObject({ size: 2, used: 1, free: 1, hypervisors: 1 });
    const c2 = await make('ip-c');
    expect(c2.json.vm.ipv4).toBe('192.0.2.2');
    expect((await settled(c2.json.job.id)).state).toBe('succeeded');
    expect((await t.request({ url: `/api/v1/vps/${c2.json.vm.id}` })).json.ipv4).toBe('192.0.2.2');
    for (const o of others) await t.request({ method: 'PATCH', url: `/api/v1/hypervisors/${o.id}`, body: { state: o.state } });
  });

  it('fails a create on an unreachable hypervisor with the SSH error, leaving nothing booked', async () => {
    for (const h of (await t.request({ url: '/api/v1/hypervisors' })).json) await t.request({ method: 'PATCH', url: `/api/v1/hypervisors/${h.id}`, body: { state: 'down' } });
    const host = await hypervisor({ ssh: { host: '127.0.0.1', port: await freePort(), privateKey: PRIVATE, hostKeySha256: 'b'.repeat(64) } });
    const res = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name: 'db-1', customer: 'cus-v', vcpus: 1, ramMb: 1024, diskGb: 10, baseImage: 'debian-12', rootPassword: 'correct horse battery' } });
    expect(res.status).toBe(202);
    const done = await settled(res.json.job.id);
    expect(done.state).toBe('failed');
    expect(done.error).toContain('ECONNREFUSED');
    expect((await t.request({ url: `/api/v1/vps/${res.json.vm.id}` })).json).toMatchObject({ state: 'failed', lastError: expect.stringContaining('ECONNREFUSED') });
    expect((await hv(host.id)).used).toEqual({ vcpus: 0, ramMb: 0, storageGb: 0 });
  }, 60_000);

  it('drives VMs from the racksmith vps CLI', async () => {
    const env = { DATABASE_URL: t.db.url, RACKSMITH_SECRET_KEY: SECRET_KEY };
    // The unreachable host of the test before takes no VM; it is still asked by a sync of it alone.
    const unreachable = (await t.request({ url: '/api/v1/hypervisors' })).json.find((h: { driver: string }) => h.driver === 'libvirt-over-ssh');
    await t.request({ method: 'PATCH', url: `/api/v1/hypervisors/${unreachable.id}`, body: { state: 'down' } });
    await hypervisor({ driver: 'fake', ssh: { host: 'hv-cli.example', hostKeySha256: 'a'.repeat(64) } });
    const images = await runCli(['vps', 'images'], env);
    expect(images.stdout).toMatch(/^debian-12\s+enabled/m);
    const bad = await runCli(['vps', 'create', '--name', 'Bad Name', '--customer', 'c', '--vcpus', '1', '--ram-mb', '512', '--disk-gb', '10', '--image', 'debian-12', '--ssh-key', KEY], env);
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining('name: expected a VM name') });
    const created = await runCli(['vps', 'create', '--name', 'cli-1', '--customer', 'cus-cli', '--vcpus', '1', '--ram-mb', '512', '--disk-gb', '10', '--image', 'debian-12', '--ssh-key', KEY, '--json'], env);
    expect(created.code).toBe(0);
    const { vm, job } = JSON.parse(created.stdout);
    expect((await settled(job.id)).state).toBe('succeeded');
    const list = await runCli(['vps', 'list', '--customer', 'cus-cli'], env);
    expect(list.stdout).toMatch(new RegExp(`^${vm.id}  running\\s+cli-1\\s+1 vCPU 512 MB 10 GB`, 'm'));
    const start = await runCli(['vps', 'start', vm.id], env);
    expect(start).toMatchObject({ code: 1, stderr: expect.stringContaining('(illegal_transition)') });
    const stop = await runCli(['vps', 'stop', vm.id, '--force'], env);
    expect(stop.stdout).toContain('racksmith jobs watch');
    expect(await runCli(['vps', 'show', 'nope'], env)).toMatchObject({ code: 2 });
    const sync = await runCli(['vps', 'sync', unreachable.id], env);
    expect(sync).toMatchObject({ code: 1, stdout: expect.stringContaining('not reachable') });
  }, 60_000);

  it('hands a VM\'s customer its serial console in the web terminal for a while, and ends it on revocation', async () => {
    await t.app.listen(0, '127.0.0.1');
    const base = `127.0.0.1:${(t.app.getHttpServer().address() as { port: number }).port}`;
    await hypervisor({ driver: 'fake', ssh: { host: 'hv-console.example', hostKeySha256: 'a'.repeat(64) } });
    const made = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name: 'con-1', customer: 'cus-con', vcpus: 1, ramMb: 512, diskGb: 10, baseImage: 'debian-12', sshKeys: [KEY] } });
    expect((await settled(made.json.job.id)).state).toBe('succeeded');
    const url = `/api/v1/vps/${made.json.vm.id}/console-grants`;
    expect((await t.request({ method: 'POST', url, body: { ttl: 30 } })).json.error).toMatchObject({ code: 'validation_failed', field: 'ttl' });
    expect((await t.request({ method: 'POST', url, body: { ttl: 600, customer: 'someone-else' } })).json.error).toMatchObject({ code: 'validation_failed', field: 'customer' });
    const g = (await t.request({ method: 'POST', url, body: { ttl: 600 } })).json;
    expect(g).toMatchObject({ state: 'active', customer: 'cus-con', consoleUrl: expect.stringContaining(`/console/vps/${g.id}#`) });
    const link = new URL(g.consoleUrl);
    expect((await t.request({ url: link.pathname, token: '' })).text).toContain('vmGrant');

    const connect = (hello: unknown) => {
      const ws = new WebSocket(`ws://${base}/api/v1/console/ws`);
      let text = '';
      const statuses: { type: string; writer?: boolean }[] = [];
      ws.on('message', (data: Buffer, isBinary: boolean) => (isBinary ? (text += data.toString()) : statuses.push(JSON.parse(data.toString()))));
      const closed = new Promise<number>((r) => ws.on('close', (code: number) => r(code)));
      ws.on('open', () => ws.send(JSON.stringify(hello)));
      return { ws, text: () => text, statuses, closed };
    };
    // A wrong token is refused; the right one gets the console (the fake echoes what is typed).
    expect(await connect({ vmGrant: g.id, token: 'wrong' }).closed).toBe(4401);
    const customer = connect({ vmGrant: g.id, token: link.hash.slice(1) });
    await until(async () => customer.text(), (x) => x.includes('con-1 login: '));
    await until(async () => customer.statuses, (x) => x.some((m) => m.writer === true));
    customer.ws.send(Buffer.from('root\r'));
    await until(async () => customer.text(), (x) => x.includes('root\r'));
    // Staff watch the same console with an API token.
    const staff = connect({ vm: made.json.vm.id, apiToken: BOOTSTRAP });
    await until(async () => staff.statuses, (x) => x.some((m) => m.writer === false));
    // Revoked: the customer's session closes; the grant shows why.
    const revoked = await t.request({ method: 'DELETE', url: `/api/v1/vps/console-grants/${g.id}` });
    expect(revoked.json).toMatchObject({ state: 'revoked', revokeReason: 'revoked by request' });
    expect(await customer.closed).toBe(4403);
    expect(await connect({ vmGrant: g.id, token: link.hash.slice(1) }).closed).toBe(4401);
    staff.ws.close();
    // (a session's close is audited as its socket closes, a moment after)
    const actions = await until(async () => (await t.request({ url: `/api/v1/audit?targetId=${made.json.vm.id}` })).json.items.map((e: { action: string }) => e.action) as string[], (a) => a.includes('console.session.close'));
    expect(actions).toEqual(expect.arrayContaining(['vm-console-grant.create', 'vm-console-grant.revoke', 'console.session.open', 'console.session.close']));
  });
});
