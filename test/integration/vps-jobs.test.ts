import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { startTestApp, type TestApp } from '../support/app';
import { freePort } from '../support/cli';
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
    const bad = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name: 'Bad Name', customer: 'c', vcpus: 1, ramMb: 1024, diskGb: 10, baseImage: 'debian-12.qcow2', sshKeys: [KEY] } });
    expect(bad.json.error).toMatchObject({ code: 'validation_failed', field: 'name' });
    const big = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name: 'too-big', customer: 'c', vcpus: 2, ramMb: 65536, diskGb: 10, baseImage: 'debian-12.qcow2', sshKeys: [KEY] } });
    expect(big.status).toBe(409);
    expect(big.json.error).toMatchObject({ code: 'no_capacity', details: { closest: { hypervisor: host.name, lacks: { ramMb: 65536 - 8192 } } } });

    const res = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name: 'web-1', hostname: 'web-1.example.com', customer: 'cus-v', vcpus: 2, ramMb: 2048, diskGb: 40, baseImage: 'debian-12.qcow2', sshKeys: [KEY] } });
    expect(res.status).toBe(202);
    expect(res.json.vm).toMatchObject({ name: 'web-1', state: 'placed', hypervisorId: host.id });
    const done = await settled(res.json.job.id);
    expect(done.state).toBe('succeeded');
    expect(done.tasks!.map((x) => x.name)).toEqual(['mark-creating', 'create-disk', 'write-seed', 'define', 'start', 'mark-running']);
    expect((await t.request({ url: `/api/v1/vps/${res.json.vm.id}` })).json.state).toBe('running');
    const fake = t.app.get(HypervisorDrivers).get('fake') as FakeHypervisorDriver;
    const machine = fake.host(host.name);
    expect(machine.domains.get('web-1')).toMatchObject({ state: 'running' });
    expect(machine.domains.get('web-1')!.xml).toContain('<memory unit=\'MiB\'>2048</memory>');
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

    const del = await t.request({ method: 'DELETE', url: `/api/v1/vps/${res.json.vm.id}` });
    expect(del.status).toBe(202);
    expect((await settled(del.json.id)).state).toBe('succeeded');
    expect((await t.request({ url: `/api/v1/vps/${res.json.vm.id}` })).json.state).toBe('deleted');
    expect(machine.domains.has('web-1')).toBe(false);
    expect([...machine.files.keys()].filter((f) => f.includes('web-1'))).toEqual([]);
    expect((await hv(host.id)).used).toEqual({ vcpus: 0, ramMb: 0, storageGb: 0 });
    expect((await t.request({ method: 'DELETE', url: `/api/v1/vps/${res.json.vm.id}` })).json.error.code).toBe('vm_gone');
  });

  it('fails a create on an unreachable hypervisor with the SSH error, leaving nothing booked', async () => {
    await t.request({ method: 'PATCH', url: `/api/v1/hypervisors/${(await t.request({ url: '/api/v1/hypervisors' })).json[0].id}`, body: { state: 'down' } });
    const host = await hypervisor({ ssh: { host: '127.0.0.1', port: await freePort(), privateKey: PRIVATE, hostKeySha256: 'b'.repeat(64) } });
    const res = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name: 'db-1', customer: 'cus-v', vcpus: 1, ramMb: 1024, diskGb: 10, baseImage: 'debian-12.qcow2', rootPassword: 'correct horse battery' } });
    expect(res.status).toBe(202);
    const done = await settled(res.json.job.id);
    expect(done.state).toBe('failed');
    expect(done.error).toContain('ECONNREFUSED');
    expect((await t.request({ url: `/api/v1/vps/${res.json.vm.id}` })).json).toMatchObject({ state: 'failed', lastError: expect.stringContaining('ECONNREFUSED') });
    expect((await hv(host.id)).used).toEqual({ vcpus: 0, ramMb: 0, storageGb: 0 });
  }, 60_000);
});
