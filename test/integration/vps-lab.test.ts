import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { signatureHeader } from '../../src/modules/billing/billing-signature';
import { BillingProcessor } from '../../src/modules/billing/billing-processor.service';
import { startVpsLab, type VpsLab } from '../support/vps-lab';
import WebSocket from 'ws';
import { until } from '../support/wait';

/**
 * The VPS jobs end to end against a real libvirtd over a real sshd (LAB.md): the hypervisor
 * fetches the image (checked by SHA-256) once, the VM boots and reads its seed, stop and start
 * work, the status sync sees a VM powered off behind its back, a rebuild gives it a new cloud-init instance, delete leaves nothing; an image whose
 * SHA-256 is wrong fails the create with nothing left behind.
 */
jest.setTimeout(600_000);

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl customer@example';
const TAG = String(process.pid);
let lab: VpsLab;

const SECRET = 'billing-secret-vps-lab-0123';
beforeAll(async () => {
  lab = await startVpsLab(TAG, { RACKSMITH_BILLING_SECRETS: SECRET });
}, 120_000);
afterAll(async () => {
  await lab?.stop();
});

const seedLine = (log: string) => /racksmith-vm: seed (.*)/.exec(log)?.[1] ?? '';

describe('VPS on a real libvirtd over SSH', () => {
  it('creates a VM from a fetched image, stops and starts it, rebuilds it and deletes it', async () => {
    const { t } = lab;
    const name = `lab-vm-${TAG}`;
    const res = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name, hostname: `${name}.example.com`, customer: 'cus-lab', vcpus: 1, ramMb: 512, diskGb: 2, baseImage: 'lab-busybox', sshKeys: [KEY] } });
    expect(res.status).toBe(202);
    const vmUrl = `/api/v1/vps/${res.json.vm.id}`;
    const created = await lab.settled(res.json.job.id);
    expect(created).toMatchObject({ state: 'succeeded' });
    expect((await t.request({ url: vmUrl })).json.state).toBe('running');
    expect(lab.lv.virsh('domstate', name).trim()).toBe('running');
    expect(lab.lv.virsh('dumpxml', name)).toMatch(/<domain type='qemu'/);
    const booted = await until(async () => lab.console(name), (log) => /racksmith-vm: \d+ cpus/.test(log), 180_000, 500);
    expect(seedLine(booted)).toContain(`instance-id: ${res.json.vm.id} local-hostname: ${name}`);
    expect(booted).toMatch(/racksmith-vm: 1 cpus, disk 4194304 sectors/);
    for (const f of ['lab-base.qcow2', 'lab-vmlinuz', 'lab-initrd.gz']) expect(lab.fetched.get(f)).toBe(1);

    // The customer's serial console in the web terminal: `virsh console` over the hypervisor's SSH connection.
    const grant = (await t.request({ method: 'POST', url: `${vmUrl}/console-grants`, body: { ttl: 600 } })).json;
    const link = new URL(grant.consoleUrl);
    const ws = new WebSocket(`ws://${lab.base}/api/v1/console/ws`);
    let typed = '';
    ws.on('message', (data: Buffer, isBinary: boolean) => void (isBinary && (typed += data.toString())));
    await new Promise((r) => ws.on('open', r));
    ws.send(JSON.stringify({ vmGrant: grant.id, token: link.hash.slice(1) }));
    // Typed until the shell answers (the console may need a moment to attach).
    await until(async () => (ws.send(Buffer.from('echo rs-$((6*7))\r')), typed), (x) => x.includes('rs-42'), 60_000, 1000);
    const closed = new Promise((r) => ws.on('close', r));
    ws.close();
    await closed;
    expect(readdirSync(lab.lv.poolDir).filter((f) => f.endsWith('.part'))).toEqual([]);

    const act = async (action: string, body: Record<string, unknown> = {}) => {
      const r = await t.request({ method: 'POST', url: `${vmUrl}/actions`, body: { action, ...body } });
      expect(r.status).toBe(202);
      expect(await lab.settled(r.json.id)).toMatchObject({ state: 'succeeded' });
    };
    await act('stop', { force: true });
    expect(lab.lv.virsh('domstate', name).trim()).toBe('shut off');
    await act('start');
    expect(lab.lv.virsh('domstate', name).trim()).toBe('running');
    // Powered off behind racksmith's back: the status sync sees it.
    lab.lv.virsh('destroy', name);
    const sync = await t.request({ method: 'POST', url: `/api/v1/hypervisors/${lab.hypervisorId}/sync` });
    expect(sync.json).toMatchObject({ error: null, changed: [{ name, from: 'running', to: 'stopped' }] });
    expect((await t.request({ url: vmUrl })).json.state).toBe('stopped');
    await act('start');
    expect(lab.lv.virsh('domstate', name).trim()).toBe('running');

    const rebuild = await t.request({ method: 'POST', url: `${vmUrl}/rebuild`, body: { rootPassword: 'correct horse battery' } });
    expect(rebuild.status).toBe(202);
    expect(await lab.settled(rebuild.json.id)).toMatchObject({ state: 'succeeded' });
    const rebuilt = await until(async () => seedLine(lab.console(name)), (line) => line.includes(`${res.json.vm.id}-${rebuild.json.id.slice(0, 8)}`), 180_000, 500);
    expect(rebuilt).toContain(`local-hostname: ${name}`);
    // The image was already in the pool: fetched once in all.
    expect(lab.fetched.get('lab-base.qcow2')).toBe(1);

    const del = await t.request({ method: 'DELETE', url: vmUrl });
    expect(await lab.settled(del.json.id)).toMatchObject({ state: 'succeeded' });
    expect(lab.lv.virsh('list', '--all', '--name')).not.toContain(name);
    expect(readdirSync(lab.lv.poolDir).filter((f) => f.startsWith(name) && !f.endsWith('.console.log'))).toEqual([]);
    expect((await t.request({ url: `/api/v1/hypervisors/${lab.hypervisorId}` })).json.used).toEqual({ vcpus: 0, ramMb: 0, storageGb: 0 });
  });

  it('fails a create from an image whose file does not match its SHA-256, leaving nothing', async () => {
    const { t } = lab;
    const put = await t.request({ method: 'PUT', url: '/api/v1/vps/images/lab-tampered', body: { os: 'busybox', file: 'lab-tampered.qcow2', url: lab.imageUrl('lab-base.qcow2'), sha256: '0'.repeat(64) } });
    expect(put.status).toBe(201);
    const name = `lab-bad-${TAG}`;
    const res = await t.request({ method: 'POST', url: '/api/v1/vps', body: { name, customer: 'cus-lab', vcpus: 1, ramMb: 512, diskGb: 2, baseImage: 'lab-tampered', sshKeys: [KEY] } });
    const done = await lab.settled(res.json.job.id);
    expect(done.state).toBe('failed');
    expect(done.error).toContain('does not have the SHA-256 the image names');
    expect(existsSync(join(lab.lv.poolDir, 'lab-tampered.qcow2'))).toBe(false);
    expect(readdirSync(lab.lv.poolDir).filter((f) => f.endsWith('.part') || f.startsWith(name))).toEqual([]);
    expect((await t.request({ url: `/api/v1/vps/${res.json.vm.id}` })).json.state).toBe('failed');
    expect((await t.request({ url: `/api/v1/hypervisors/${lab.hypervisorId}` })).json.used).toEqual({ vcpus: 0, ramMb: 0, storageGb: 0 });
  });

  it('turns a signed order.paid for a VPS plan into a running VM and order.provisioned', async () => {
    const { t } = lab;
    expect((await t.request({ method: 'PUT', url: '/api/v1/billing/plans/vps-lab', body: { kind: 'vps', spec: { vcpus: 1, ramMb: 512, diskGb: 2, image: 'lab-busybox' } } })).status).toBe(201);
    const order = `ord-lab-${TAG}`;
    const body = JSON.stringify({ id: `evt-${order}`, type: 'order.paid', occurredAt: new Date().toISOString(), order: { id: order, customer: 'cus-lab-order', plan: 'vps-lab', options: { hostname: 'paid.example.com' } } });
    const res = await t.request({ method: 'POST', url: '/webhooks/billing', payload: body, headers: { 'content-type': 'application/json', 'racksmith-signature': signatureHeader(SECRET, body) }, token: '' });
    expect(res.status).toBe(202);
    const processor = t.app.get(BillingProcessor);
    while (await processor.processOne()) {
      /* next */
    }
    const active = await until(() => t.request({ url: `/api/v1/billing/orders/${order}` }), (r) => ['active', 'failed'].includes(r.json.state), 180_000, 500);
    expect(active.json).toMatchObject({ state: 'active', kind: 'vps' });
    const vm = (await t.request({ url: `/api/v1/vps/${active.json.vmId}` })).json;
    expect(vm).toMatchObject({ state: 'running', hostname: 'paid.example.com', customer: 'cus-lab-order' });
    expect(lab.lv.virsh('domstate', vm.name).trim()).toBe('running');
    const booted = await until(async () => lab.console(vm.name), (log) => /racksmith-vm: \d+ cpus/.test(log), 180_000, 500);
    expect(seedLine(booted)).toContain(`local-hostname: paid`);
    const outbox = (await t.request({ url: `/api/v1/billing/outbox?order=${order}` })).json.items;
    expect(outbox.find((m: { type: string }) => m.type === 'order.provisioned')).toMatchObject({ hasSecrets: true, payload: { service: { vm: vm.name, hostname: 'paid.example.com', image: 'lab-busybox' } } });
  });
});
