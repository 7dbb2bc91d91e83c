import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { buildTestInitramfs, createNetns, exited, labVm, requireNetbootPeers, startLabRacksmith, type LabRacksmith, type Netns } from '../support/netboot-lab';
import { until } from '../support/wait';
import { signatureHeader } from '../../src/modules/billing/billing-signature';
import { buildWipeImage } from '../../src/modules/boot/wipe-image';

/**
 * A real network boot (LAB.md): racksmith runs inside a network namespace whose bridge is the
 * provisioning network, with authoritative DHCP, TFTP and HTTP boot; a qemu VM (BIOS, then UEFI)
 * whose MAC is in the inventory boots through that chain into a small test installer that takes a
 * lease and calls `done`; the install job succeeds and the server is active. An unknown MAC gets
 * no offer.
 */
jest.setTimeout(900_000);

const BILLING_SECRET = 'e2e-billing-secret-0123456789';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl engineer@example';

let dir: string;
let db: TestDatabase;
let ns: Netns;
let lab: LabRacksmith;
let modelId: string;
const call = (method: string, path: string, body?: unknown) => lab.call(method, path, body);

beforeAll(async () => {
  const { kernel, moduleRoot } = requireNetbootPeers();
  dir = mkdtempSync(join(tmpdir(), 'racksmith-e2e-'));
  const initrd = buildTestInitramfs(dir, moduleRoot);
  // racksmith's own disk-wipe image (what `racksmith boot wipe-image` writes), for the wipe job.
  const wipe = buildWipeImage(join(dir, 'wipe'));
  writeFileSync(
    join(dir, 'assets.yaml'),
    `debian-12:\n  kernel: ${kernel}\n  initrd: ${initrd}\n  cmdline: console=ttyS0 panic=5 hostname={{hostname}}\n` +
      `wipe:\n  kernel: ${wipe.kernel}\n  initrd: ${wipe.initrd}\n  cmdline: console=ttyS0 panic=5 racksmith.wipe={{wipeMode}}\n`,
  );
  db = await createTestDatabase();
  ns = createNetns('boot');
  // The billing system's side, on the namespace's loopback: keeps what racksmith sends it.
  const receiver = `require('node:http').createServer((q, r) => { let b = ''; q.on('data', (d) => (b += d)); q.on('end', () => { require('node:fs').appendFileSync(${JSON.stringify(join(dir, 'billing.jsonl'))}, JSON.stringify({ signature: q.headers['racksmith-signature'], body: JSON.parse(b) }) + '\\n'); r.writeHead(200).end(); }); }).listen(18099, '127.0.0.1');`;
  ns.spawn(process.execPath, ['-e', receiver]);
  lab = await startLabRacksmith(ns, db.name, {
    RACKSMITH_BOOT_ASSETS: join(dir, 'assets.yaml'),
    RACKSMITH_LOG_LEVEL: 'debug',
    RACKSMITH_BILLING_SECRETS: BILLING_SECRET,
    RACKSMITH_BILLING_URL: 'http://127.0.0.1:18099/events',
  });
  modelId = (await call('POST', '/hardware-models', { vendor: 'Lab', model: 'VM', heightU: 1, bmcDriver: 'fake' })).json.id;
});

afterAll(async () => {
  await ns?.destroy();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function serverFor(name: string, mac: string, address: string): Promise<string> {
  const dev = await call('POST', '/devices', { site: 'lab', name, role: 'rented-server', modelId, bmc: { address: '127.0.0.2', username: 'admin', password: 'secret' }, nics: [{ name: 'eth0', mac, pxe: true, ip: address }] });
  expect(dev.status).toBe(201);
  await call('POST', `/servers/${dev.json.id}/transition`, { to: 'available' });
  return dev.json.id;
}

const qemu = (kind: 'bios' | 'uefi', mac: string, serial: string, disk?: string) => labVm(ns, dir, kind, mac, serial, { disk });

/** An engineer's install through the API; the job's id. */
const byApi = async (id: string, name: string) => (await call('POST', `/servers/${id}/install`, { os: 'debian-12', hostname: `${name}.lab.example`, sshKeys: [KEY] })).json.id as string;

async function installAndBoot(kind: 'bios' | 'uefi', name: string, mac: string, address: string, start: (serverId: string, name: string) => Promise<string> = byApi) {
  const id = await serverFor(name, mac, address);
  const job = { id: await start(id, name) };
  await until(async () => (await call('GET', `/jobs/${job.id}`)).json, (j: { tasks: { name: string; state: string }[] }) => j.tasks.some((x) => x.name === 'wait-for-installer' && x.state === 'waiting'), 60_000, 500);
  const serial = join(dir, `${name}.serial.log`);
  const vm = qemu(kind, mac, serial);
  const started = Date.now();
  try {
    const done = await until(async () => (await call('GET', `/jobs/${job.id}`)).json, (j: { state: string; tasks: { name: string }[] }) => ['succeeded', 'failed', 'cancelled'].includes(j.state), 420_000, 1000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- serial ---\n${existsSync(serial) ? readFileSync(serial, 'utf8').slice(-4000) : ''}\n--- racksmith ---\n${lab.log().slice(-4000)}`);
    });
    const seconds = Math.round((Date.now() - started) / 1000);
    expect(done.state).toBe('succeeded');
    expect((await call('GET', `/servers/${id}`)).json.state).toBe('active');
    const logs = JSON.stringify((await call('GET', `/jobs/${job.id}/logs`)).json);
    expect(logs).toContain('boot: DHCP offer');
    expect(logs).toContain('boot: iPXE script for debian-12 served');
    expect(logs).toContain(`installer finished: test installer on inet ${address}`);
    if (kind === 'uefi') {
      expect(logs).toContain('with loader snponly.efi');
      expect(logs).toContain(`boot: TFTP snponly.efi to ${mac} sent`);
    }
    // Milestones are lines of the task that waits for the installer.
    const lines = (await call('GET', `/jobs/${job.id}/logs`)).json as { seq: number | null; message: string }[] | { items: { seq: number | null; message: string }[] };
    const list = Array.isArray(lines) ? lines : lines.items;
    const waitSeq = done.tasks.findIndex((x: { name: string }) => x.name === 'wait-for-installer');
    expect(list.filter((l) => l.message.startsWith('boot: ')).every((l) => l.seq === waitSeq)).toBe(true);
    expect(await exited(vm, 60_000)).toBe(true); // the installer powered the VM off
    return seconds;
  } finally {
    if (vm.exitCode === null) vm.kill('SIGKILL');
    await exited(vm, 10_000);
  }
}

describe('network boot in a VM', () => {
  it('BIOS: DHCP, iPXE script over HTTP, kernel and initrd, the installer calls back; the job succeeds, the server is active', async () => {
    const s = await installAndBoot('bios', 'vm-bios', '52:54:00:e2:e0:01', '10.77.0.50');
    console.log(`BIOS boot to callback: ${s} s`);
  });

  it('UEFI: DHCP (arch 7), snponly.efi over TFTP (the native sender), then the same chain', async () => {
    const s = await installAndBoot('uefi', 'vm-uefi', '52:54:00:e2:e0:02', '10.77.0.51');
    console.log(`UEFI boot to callback: ${s} s`);
    const health = await (await fetch(`${lab.api}/health`)).json();
    expect(health.checks.tftp.detail).toContain('native sender');
  });

  it('a paid order from the billing webhook: installed through the same chain, IPKVM access granted, billing told', async () => {
    await call('PUT', '/billing/plans/lab-vm', { kind: 'dedicated', spec: { hardwareModel: 'Lab/VM' } });
    const paidAt = Date.now();
    const viaBilling = async () => {
      const body = JSON.stringify({ id: 'evt-e2e-1', type: 'order.paid', occurredAt: new Date().toISOString(), order: { id: 'ord-e2e', customer: 'cus-e2e', plan: 'lab-vm', options: { os: 'debian-12', hostname: 'paid.lab.example', sshKeys: [KEY] } } });
      const res = await fetch(`${lab.api}/webhooks/billing`, { method: 'POST', headers: { 'content-type': 'application/json', 'racksmith-signature': signatureHeader(BILLING_SECRET, body) }, body });
      expect(res.status).toBe(202);
      const order = await until(async () => (await call('GET', '/billing/orders/ord-e2e')).json, (o: { jobId: string | null }) => !!o?.jobId, 30_000, 200);
      return order.jobId as string;
    };
    await installAndBoot('bios', 'vm-paid', '52:54:00:e2:e0:03', '10.77.0.52', viaBilling);
    expect((await call('GET', '/billing/orders/ord-e2e')).json).toMatchObject({ state: 'active', customer: 'cus-e2e' });
    const sent = await until(
      async () => (existsSync(join(dir, 'billing.jsonl')) ? readFileSync(join(dir, 'billing.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : []),
      (all: { body: { type: string } }[]) => all.some((m) => m.body.type === 'order.provisioned'),
      30_000,
      500,
    );
    const provisioned = sent.find((m: { body: { type: string } }) => m.body.type === 'order.provisioned');
    expect(provisioned.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(provisioned.body).toMatchObject({
      order: { id: 'ord-e2e', customer: 'cus-e2e' },
      service: { hostname: 'paid.lab.example', os: 'debian-12', ipv4: '10.77.0.52', site: 'lab' },
      ipkvm: { username: expect.stringMatching(/^rs-/), password: expect.any(String) },
    });
    console.log(`order.paid to order.provisioned (VM boot and install included): ${Math.round((Date.now() - paidAt) / 1000)} s`);
  });

  it('a wipe job boots racksmith\'s wipe image, which clears the disk and reports; the server is available', async () => {
    const MiB = 1 << 20;
    const disk = join(dir, 'wipe-disk.raw');
    writeFileSync(disk, Buffer.alloc(64 * MiB, 0xaa));
    const id = await serverFor('vm-wipe', '52:54:00:e2:e0:04', '10.77.0.53');
    const job = (await call('POST', `/servers/${id}/wipe`, { mode: 'quick' })).json;
    expect(job).toMatchObject({ kind: 'wipe', state: 'queued' });
    await until(async () => (await call('GET', `/jobs/${job.id}`)).json, (j: { tasks: { name: string; state: string }[] }) => j.tasks.some((x) => x.name === 'wait-for-wipe' && x.state === 'waiting'), 60_000, 500);
    expect((await call('GET', `/servers/${id}`)).json.state).toBe('wiping');
    const serial = join(dir, 'vm-wipe.serial.log');
    const vm = qemu('bios', '52:54:00:e2:e0:04', serial, disk);
    try {
      const done = await until(async () => (await call('GET', `/jobs/${job.id}`)).json, (j: { state: string }) => ['succeeded', 'failed', 'cancelled'].includes(j.state), 420_000, 1000).catch((err: Error) => {
        throw new Error(`${err.message}\n--- serial ---\n${existsSync(serial) ? readFileSync(serial, 'utf8').slice(-4000) : ''}`);
      });
      expect(done.state).toBe('succeeded');
      expect((await call('GET', `/servers/${id}`)).json.state).toBe('available');
      expect(JSON.stringify((await call('GET', `/jobs/${job.id}/logs`)).json)).toContain('disk wipe finished: wiped (quick) vda:64MiB');
      expect(await exited(vm, 60_000)).toBe(true);
      const bytes = readFileSync(disk);
      expect(bytes.subarray(0, 16 * MiB).equals(Buffer.alloc(16 * MiB))).toBe(true);
      expect(bytes.subarray(bytes.length - 16 * MiB).equals(Buffer.alloc(16 * MiB))).toBe(true);
      expect(bytes.subarray(32 * MiB, 33 * MiB).equals(Buffer.alloc(MiB, 0xaa))).toBe(true);
    } finally {
      if (vm.exitCode === null) vm.kill('SIGKILL');
      await exited(vm, 10_000);
    }
  });

  it('an unknown MAC gets no offer', async () => {
    const serial = join(dir, 'unknown.serial.log');
    const vm = qemu('bios', '52:54:00:e2:e0:99', serial);
    try {
      await exited(vm, 45_000);
    } finally {
      if (vm.exitCode === null) vm.kill('SIGKILL');
      await exited(vm, 10_000);
    }
    const log = existsSync(serial) ? readFileSync(serial, 'utf8') : '';
    expect(log).toMatch(/iPXE/);
    expect(log).not.toContain('racksmith');
    expect(lab.log()).toContain('"mac":"52:54:00:e2:e0:99"');
  });
});
