import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createNetns, exited, labVm, requireNetbootPeers, startLabRacksmith, type LabRacksmith, type Netns } from '../support/netboot-lab';
import { requirePeer } from '../support/peers';
import { until } from '../support/wait';
import { signatureHeader } from '../../src/modules/billing/billing-signature';
import { buildOsImage, type BuiltImage } from '../../src/modules/images/image-build';
import { buildDeployRamdisk } from '../../src/modules/images/deploy-ramdisk';
import { buildWipeImage } from '../../src/modules/boot/wipe-image';

/**
 * A real OS on a real disk (LAB.md's network-boot lab): `racksmith images build debian-12` makes a
 * Debian 12 image from Debian's packages; a signed `order.paid` for a plan that deploys it picks a
 * VM with an empty disk; the VM network-boots racksmith's deploy ramdisk, which streams the image
 * onto the disk (SHA-256 checked), grows the root and writes the order's hostname and key; it
 * reboots, racksmith hands it to its disk, Debian boots from it and phones home; the order is
 * provisioned, billing is told, and the customer's key logs in over SSH. Then one more power
 * cycle boots the disk again, with no installer. BIOS and UEFI. On BIOS the same machine is then
 * reinstalled with another key, and its order terminated: the wipe clears the installed disk. An
 * image changed after it was checked is refused by the deploy ramdisk itself.
 *
 * TEST_IMAGE_DIR keeps the built image between runs (the build takes minutes).
 */
jest.setTimeout(3_600_000);

const BILLING_SECRET = 'e2e-billing-secret-0123456789';
const steps: string[] = [];
const step = (what: string, since: number) => {
  const s = `${what}: ${Math.round((Date.now() - since) / 1000)} s`;
  steps.push(s);
  console.log(s);
};

let dir: string;
let db: TestDatabase;
let ns: Netns;
let lab: LabRacksmith;
let image: BuiltImage;
let key: { priv: string; pub: string };
const call = (method: string, path: string, body?: unknown) => lab.call(method, path, body);

beforeAll(async () => {
  const { kernel } = requireNetbootPeers();
  requirePeer('/usr/bin/mmdebstrap', 'mmdebstrap');
  requirePeer('/usr/bin/ssh', 'openssh-client');
  dir = mkdtempSync(join(tmpdir(), 'racksmith-image-'));
  const imageDir = process.env.TEST_IMAGE_DIR || join(dir, 'images');
  mkdirSync(imageDir, { recursive: true });
  const cached = join(imageDir, 'debian-12-test.json');
  const t0 = Date.now();
  if (existsSync(cached) && existsSync(JSON.parse(readFileSync(cached, 'utf8')).file)) {
    image = JSON.parse(readFileSync(cached, 'utf8'));
  } else {
    image = await buildOsImage({ os: 'debian-12', outDir: imageDir, name: 'debian-12-test', log: (l) => console.log(`image build: ${l}`) });
    step(`racksmith images build debian-12 (${Math.round(image.bytes / 2 ** 20)} MiB gz, ${Math.round(image.diskBytes / 2 ** 20)} MiB disk)`, t0);
  }
  const deploy = await buildDeployRamdisk(join(dir, 'deploy'));
  console.log(`deploy ramdisk: ${Math.round(deploy.bytes / 1024)} KiB initrd, ${deploy.modules.length} modules`);
  // racksmith's wipe image too: a terminated order's server is wiped.
  const wipe = buildWipeImage(join(dir, 'wipe'));
  writeFileSync(
    join(dir, 'assets.yaml'),
    `deploy:\n  kernel: ${deploy.kernel}\n  initrd: ${deploy.initrd}\n  cmdline: console=ttyS0,115200n8 panic=10\n` +
      `wipe:\n  kernel: ${wipe.kernel}\n  initrd: ${wipe.initrd}\n  cmdline: console=ttyS0 panic=5 racksmith.wipe={{wipeMode}}\n`,
  );
  void kernel;
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'customer@example', '-f', join(dir, 'customer')]);
  key = { priv: join(dir, 'customer'), pub: readFileSync(join(dir, 'customer.pub'), 'utf8').trim() };

  db = await createTestDatabase();
  ns = createNetns('img');
  const receiver = `require('node:http').createServer((q, r) => { let b = ''; q.on('data', (d) => (b += d)); q.on('end', () => { require('node:fs').appendFileSync(${JSON.stringify(join(dir, 'billing.jsonl'))}, JSON.stringify({ body: JSON.parse(b) }) + '\\n'); r.writeHead(200).end(); }); }).listen(18099, '127.0.0.1');`;
  ns.spawn(process.execPath, ['-e', receiver]);
  lab = await startLabRacksmith(ns, db.name, {
    RACKSMITH_BOOT_ASSETS: join(dir, 'assets.yaml'),
    RACKSMITH_BILLING_SECRETS: BILLING_SECRET,
    RACKSMITH_BILLING_URL: 'http://127.0.0.1:18099/events',
  });
  const put = await call('PUT', `/images/${image.name}`, { os: image.os, format: image.format, file: image.file, sha256: image.sha256, diskBytes: image.diskBytes });
  expect(put.status).toBe(201);
  await call('POST', '/hardware-models', { vendor: 'Lab', model: 'ImageVM', heightU: 1, bmcDriver: 'fake', disks: [{ kind: 'ssd', sizeGb: 4, count: 1 }] });
  const plan = await call('PUT', '/billing/plans/lab-image', { kind: 'dedicated', spec: { hardwareModel: 'Lab/ImageVM', images: { 'debian-12': image.name } } });
  expect(plan.status).toBeLessThan(300);
});

afterAll(async () => {
  await ns?.destroy();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (steps.length) console.log(`image deploy, step by step:\n${steps.join('\n')}`);
});

async function serverFor(name: string, mac: string, address: string): Promise<string> {
  const model = (await call('GET', '/hardware-models')).json;
  const modelId = (Array.isArray(model) ? model : model.items).find((m: { model: string }) => m.model === 'ImageVM').id;
  const dev = await call('POST', '/devices', { site: 'lab', name, role: 'rented-server', modelId, bmc: { address: '127.0.0.2', username: 'admin', password: 'secret' }, nics: [{ name: 'eth0', mac, pxe: true, ip: address }] });
  expect(dev.status).toBe(201);
  await call('POST', `/servers/${dev.json.id}/transition`, { to: 'available' });
  return dev.json.id;
}

const billingSent = () => (existsSync(join(dir, 'billing.jsonl')) ? readFileSync(join(dir, 'billing.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).body) : []);

/** The customer's own login: `ssh root@<address>` with their key, from inside the lab namespace. */
function ssh(address: string, command: string, priv = key.priv): string {
  return execFileSync(
    'ip',
    ['netns', 'exec', ns.name, 'ssh', '-i', priv, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10', `root@${address}`, command],
    { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] },
  );
}

async function sshReady(address: string, ms: number, priv = key.priv): Promise<string> {
  return until(
    async () => {
      try {
        return ssh(address, 'hostname; cat /etc/os-release', priv);
      } catch {
        return '';
      }
    },
    (out) => out.length > 0,
    ms,
    3000,
  );
}

/** A wait that ran out: the error with the VM's console, the job's log and racksmith's log. */
const failure = (jobId: string, serial: () => string) => async (err: Error): Promise<never> => {
  // The firmware's screens are full of cursor moves: strip the escapes so the tail is text.
  const f = serial();
  const text = existsSync(f) ? readFileSync(f, 'utf8').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '').slice(-6000) : '(no serial log)';
  throw new Error(`${err.message.slice(0, 300)}\n--- serial (${f}) ---\n${text}\n--- job ---\n${JSON.stringify((await call('GET', `/jobs/${jobId}/logs`)).json).slice(-2000)}\n--- racksmith ---\n${lab.log().slice(-2000)}`);
};
const jobEnded = (jobId: string, ms: number) =>
  until(async () => (await call('GET', `/jobs/${jobId}`)).json, (j: { state: string }) => ['succeeded', 'failed', 'cancelled'].includes(j.state), ms, 2000);
const taskWaiting = (jobId: string, task: string) =>
  until(async () => (await call('GET', `/jobs/${jobId}`)).json, (j: { tasks: { name: string; state: string }[] }) => j.tasks.some((x) => x.name === task && x.state === 'waiting'), 120_000, 500);

interface Machine {
  id: string;
  kind: 'bios' | 'uefi';
  mac: string;
  address: string;
  disk: string;
  orderId: string;
}

const stop = async (vm: ChildProcess | undefined) => {
  if (vm && vm.exitCode === null) vm.kill('SIGKILL');
  if (vm) await exited(vm, 10_000);
};

async function orderToLogin(kind: 'bios' | 'uefi', n: number): Promise<Machine> {
  const mac = `52:54:00:e2:e1:0${n}`;
  const address = `10.77.0.${60 + n}`;
  const orderId = `ord-img-${kind}`;
  const hostname = `${kind}-img.customer.example`;
  const id = await serverFor(`vm-img-${kind}`, mac, address);
  const disk = join(dir, `${kind}.disk.raw`);
  writeFileSync(disk, '');
  truncateSync(disk, 4 * 2 ** 30);
  const serial = join(dir, `${kind}.serial.log`);
  const paidAt = Date.now();
  const body = JSON.stringify({ id: `evt-${orderId}`, type: 'order.paid', occurredAt: new Date().toISOString(), order: { id: orderId, customer: 'cus-img', plan: 'lab-image', options: { os: 'debian-12', hostname, sshKeys: [key.pub] } } });
  const res = await fetch(`${lab.api}/webhooks/billing`, { method: 'POST', headers: { 'content-type': 'application/json', 'racksmith-signature': signatureHeader(BILLING_SECRET, body) }, body });
  expect(res.status).toBe(202);
  const order = await until(async () => (await call('GET', `/billing/orders/${orderId}`)).json, (o: { jobId: string | null; serverId: string | null }) => !!o?.jobId, 30_000, 200);
  const jobId = order.jobId as string;
  expect(order.serverId).toBe(id);
  await taskWaiting(jobId, 'wait-for-installer');
  step(`${kind}: order.paid to the job waiting for the deploy`, paidAt);
  let vm: ChildProcess | undefined = labVm(ns, dir, kind, mac, serial, { disk, reboot: true, memMb: 1024 });
  let serialNow = serial;
  const failWith = failure(jobId, () => serialNow);
  try {
    const vmAt = Date.now();
    const logs = async () => JSON.stringify((await call('GET', `/jobs/${jobId}/logs`)).json);
    await until(logs, (l) => l.includes('installer finished'), 900_000, 2000).catch(failWith);
    step(`${kind}: power-on to the image written, grown and configured (deploy ramdisk)`, vmAt);
    const deployedAt = Date.now();
    const done = await jobEnded(jobId, 900_000).catch(failWith);
    step(`${kind}: deploy done to the first boot's phone-home (reboot, disk boot, Debian up)`, deployedAt);
    expect(done.state).toBe('succeeded');
    const log = await logs();
    expect(log).toContain(`boot: iPXE script for the deploy of image ${image.name} served to ${mac}`);
    expect(log).toMatch(/installer finished: image written to \/dev\/vda \(sha256 ok\), root grown to \d+ MiB, configured/);
    expect(log).toContain(`boot: ${mac} handed over to its disk`);
    expect(log).toContain(`first boot reported: first boot of ${hostname.split('.')[0]}`);
    const sent = await until(async () => billingSent(), (all: { type: string }[]) => all.some((m) => m.type === 'order.provisioned' && (m as unknown as { order: { id: string } }).order.id === orderId), 60_000, 500);
    expect(sent.find((m: { type: string; order: { id: string } }) => m.type === 'order.provisioned' && m.order.id === orderId)).toMatchObject({ service: { hostname, os: 'debian-12', ipv4: address } });
    expect((await call('GET', `/billing/orders/${orderId}`)).json.state).toBe('active');
    step(`${kind}: order.paid to order.provisioned`, paidAt);
    const loginAt = Date.now();
    const out = await sshReady(address, 180_000).catch(failWith);
    step(`${kind}: order.paid to a working SSH login`, paidAt);
    void loginAt;
    expect(out.split('\n')[0]).toBe(hostname.split('.')[0]);
    expect(out).toContain('VERSION_ID="12"');
    expect(out).toContain('ID=debian');
    // The root was grown to the disk (4 GiB), well past the image's own size.
    const rootBytes = Number(ssh(address, "df -B1 --output=size / | tail -n 1").trim());
    expect(rootBytes).toBeGreaterThan(image.diskBytes);

    // One more power cycle: the disk boots again, racksmith offers no installer.
    await stop(vm);
    const before = (await logs()).length;
    const cycleAt = Date.now();
    const serial2 = join(dir, `${kind}.serial2.log`);
    serialNow = serial2;
    vm = labVm(ns, dir, kind, mac, serial2, { disk, reboot: true, memMb: 1024 });
    const again = await sshReady(address, 600_000).catch(failWith);
    step(`${kind}: power cycle to SSH again (disk boot, no installer)`, cycleAt);
    expect(again.split('\n')[0]).toBe(hostname.split('.')[0]);
    const second = readFileSync(serial2, 'utf8');
    expect(second).toContain('boots from its disk');
    expect(second).not.toContain('racksmith: image written');
    expect((await logs()).length).toBe(before);
  } finally {
    await stop(vm);
  }
  return { id, kind, mac, address, disk, orderId };
}

/**
 * The same machine, reinstalled by an engineer with another hostname and another customer key
 * over the OS it runs; then its order is terminated: the wipe clears the installed disk, and the
 * machine, powered on again, boots nothing.
 */
async function reinstallThenTerminate(m: Machine) {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'next@example', '-f', join(dir, 'customer2')]);
  const key2 = { priv: join(dir, 'customer2'), pub: readFileSync(join(dir, 'customer2.pub'), 'utf8').trim() };
  const hostname = `${m.kind}-again.customer.example`;
  const res = await call('POST', `/servers/${m.id}/install`, { os: 'debian-12', image: image.name, hostname, sshKeys: [key2.pub] });
  expect(res.status).toBe(202);
  const jobId = res.json.id as string;
  await taskWaiting(jobId, 'wait-for-installer');
  let serial = join(dir, `${m.kind}.reinstall.serial.log`);
  const failWith = failure(jobId, () => serial);
  const at = Date.now();
  let vm: ChildProcess | undefined = labVm(ns, dir, m.kind, m.mac, serial, { disk: m.disk, reboot: true, memMb: 1024 });
  try {
    const done = await jobEnded(jobId, 900_000).catch(failWith);
    step(`${m.kind} reinstall: power-on to the reinstalled system's phone-home`, at);
    expect(done.state).toBe('succeeded');
    const out = await sshReady(m.address, 180_000, key2.priv).catch(failWith);
    step(`${m.kind} reinstall: power-on to SSH with the new key`, at);
    expect(out.split('\n')[0]).toBe(hostname.split('.')[0]);
    // The old system is gone with its keys: the first customer's key is refused.
    expect(() => ssh(m.address, 'true', key.priv)).toThrow(/Permission denied/);
  } finally {
    await stop(vm);
    vm = undefined;
  }

  // The order ends: billing terminates it, the server is wiped and back in stock.
  const body = JSON.stringify({ id: `evt-${m.orderId}-end`, type: 'order.terminated', occurredAt: new Date().toISOString(), order: { id: m.orderId, customer: 'cus-img' } });
  const end = await fetch(`${lab.api}/webhooks/billing`, { method: 'POST', headers: { 'content-type': 'application/json', 'racksmith-signature': signatureHeader(BILLING_SECRET, body) }, body });
  expect(end.status).toBe(202);
  const wipe = await until(async () => (await call('GET', `/jobs?kind=wipe&server=${m.id}`)).json.items, (items: { id: string }[]) => items.length > 0, 60_000, 500);
  const wipeId = wipe[0].id as string;
  await taskWaiting(wipeId, 'wait-for-wipe');
  serial = join(dir, `${m.kind}.wipe.serial.log`);
  const wipeFail = failure(wipeId, () => serial);
  const wipeAt = Date.now();
  vm = labVm(ns, dir, m.kind, m.mac, serial, { disk: m.disk, reboot: true, memMb: 1024 });
  try {
    const wiped = await jobEnded(wipeId, 600_000).catch(wipeFail);
    step(`${m.kind}: order.terminated's wipe, power-on to done`, wipeAt);
    expect(wiped.state).toBe('succeeded');
    expect((await call('GET', `/servers/${m.id}`)).json.state).toBe('available');
    expect((await call('GET', `/billing/orders/${m.orderId}`)).json.state).toBe('terminated');
    expect(await exited(vm, 60_000)).toBe(true);
    const MiB = 2 ** 20;
    const size = statSync(m.disk).size;
    expect(readAt(m.disk, 0, 16 * MiB).every((b) => b === 0)).toBe(true);
    expect(readAt(m.disk, size - 16 * MiB, 16 * MiB).every((b) => b === 0)).toBe(true);
    // Powered on again: racksmith hands it to its disk, and the disk has nothing to boot.
    serial = join(dir, `${m.kind}.after-wipe.serial.log`);
    vm = labVm(ns, dir, m.kind, m.mac, serial, { disk: m.disk, reboot: true, memMb: 1024 });
    await until(async () => (existsSync(serial) ? readFileSync(serial, 'utf8') : ''), (t) => t.includes('No bootable device'), 180_000, 2000).catch(wipeFail);
    expect(readFileSync(serial, 'utf8')).not.toContain('Debian GNU/Linux');
  } finally {
    await stop(vm);
  }
  // Its VM is gone: keep the next order (UEFI's) from picking it.
  expect((await call('PUT', `/servers/${m.id}/maintenance`, { enabled: true, reason: 'lab VM stopped' })).status).toBeLessThan(300);
}

function readAt(file: string, at: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, at);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/**
 * The image on the agent changed after it was checked (or was damaged on the way): the deploy
 * ramdisk's own SHA-256 sees it, clears the disk's partition tables and powers off; the job fails
 * with the reason and the half-written disk never boots.
 */
async function corruptImage() {
  const mac = '52:54:00:e2:e1:09';
  const id = await serverFor('vm-img-corrupt', mac, '10.77.0.69');
  const copy = join(dir, 'corrupt.raw.gz');
  execFileSync('cp', [image.file, copy]);
  expect((await call('PUT', '/images/debian-12-corrupt', { os: image.os, format: image.format, file: copy, sha256: image.sha256, diskBytes: image.diskBytes })).status).toBe(201);
  const disk = join(dir, 'corrupt.disk.raw');
  writeFileSync(disk, '');
  truncateSync(disk, 4 * 2 ** 30);
  const job = await call('POST', `/servers/${id}/install`, { os: 'debian-12', image: 'debian-12-corrupt', hostname: 'corrupt.customer.example', sshKeys: [key.pub] });
  expect(job.status).toBe(202);
  await taskWaiting(job.json.id, 'wait-for-installer');
  // Checked by stage-image, then one byte near the end changes under it.
  const at = statSync(copy).size - 4096;
  const byte = readAt(copy, at, 1)[0]!;
  const fd = openSync(copy, 'r+');
  writeSync(fd, Buffer.from([byte ^ 0xff]), 0, 1, at);
  closeSync(fd);
  const serial = join(dir, 'corrupt.serial.log');
  const at0 = Date.now();
  const vm = labVm(ns, dir, 'bios', mac, serial, { disk, reboot: true, memMb: 1024 });
  try {
    const failed = await until(async () => (await call('GET', `/jobs/${job.json.id}`)).json, (j: { state: string; error: string | null }) => j.state !== 'running' && j.state !== 'queued', 900_000, 2000);
    step('corrupt image: power-on to the deploy refusing it', at0);
    expect(failed.state).toBe('failed');
    expect(failed.error).toMatch(/image checksum mismatch: expected [0-9a-f]{64}, got [0-9a-f]{64} \(disk cleared, not booted\)/);
    expect((await call('GET', `/servers/${id}`)).json).toMatchObject({ state: 'failed', lastError: expect.stringContaining('checksum mismatch') });
    // The ramdisk powered the machine off; the disk has no partition table at either end.
    expect(await exited(vm, 60_000)).toBe(true);
    expect(readAt(disk, 0, 2 ** 20).every((b) => b === 0)).toBe(true);
    expect(readAt(disk, statSync(disk).size - 2 ** 20, 2 ** 20).every((b) => b === 0)).toBe(true);
    expect(readFileSync(serial, 'utf8')).not.toContain('racksmith: image written');
  } finally {
    await stop(vm);
  }
}

describe('image deploy to a real disk', () => {
  let bios: Machine | undefined;
  it('BIOS: order.paid → deploy ramdisk writes Debian 12 → boots from disk → phone-home → provisioned → SSH login with the customer key; a power cycle boots the disk again', async () => {
    bios = await orderToLogin('bios', 1);
  });

  it('BIOS, the same machine: reinstalled over its OS with another key and hostname, then terminated: the wipe clears the installed disk and nothing boots', async () => {
    if (!bios) throw new Error('needs the BIOS install above, which failed');
    await reinstallThenTerminate(bios);
  });

  it('UEFI: the same, through OVMF', async () => {
    await orderToLogin('uefi', 2);
  });

  it('an image that changed after it was checked: the deploy ramdisk refuses it, clears the disk and powers off; the job fails with the reason', async () => {
    await corruptImage();
  });
});
