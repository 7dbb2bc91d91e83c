import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createNetns, requireNetbootPeers, startLabRacksmith, type LabRacksmith, type Netns } from '../support/netboot-lab';
import { requirePeer } from '../support/peers';
import { until } from '../support/wait';

/**
 * The real Debian installer (package debian-installer-12-netboot-amd64), booted through
 * racksmith's DHCP and iPXE chain with the shipped boot-asset manifest, fetches its rendered
 * preseed from racksmith. The install itself (packages from a mirror) cannot run here: the lab has
 * no Internet, so the test ends once the preseed is served.
 */
jest.setTimeout(600_000);

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl engineer@example';

let dir: string;
let db: TestDatabase;
let ns: Netns;
let lab: LabRacksmith;
const call = (method: string, path: string, body?: unknown) => lab.call(method, path, body);

beforeAll(async () => {
  requireNetbootPeers();
  requirePeer('/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux', 'debian-installer-12-netboot-amd64');
  dir = mkdtempSync(join(tmpdir(), 'racksmith-e2e-di-'));
  db = await createTestDatabase();
  ns = createNetns('di');
  // The shipped boot-asset manifest: debian-12 is the real installer.
  lab = await startLabRacksmith(ns, db.name);
});

afterAll(async () => {
  await ns?.destroy();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('the Debian installer boots through racksmith and fetches its rendered preseed', async () => {
  const modelId = (await call('POST', '/hardware-models', { vendor: 'Lab', model: 'VM', heightU: 1, bmcDriver: 'fake' })).json.id;
  const mac = '52:54:00:e2:d1:01';
  const dev = await call('POST', '/devices', { site: 'lab', name: 'vm-di', role: 'rented-server', modelId, bmc: { address: '127.0.0.2' }, nics: [{ name: 'eth0', mac, pxe: true, ip: '10.77.0.60' }] });
  await call('POST', `/servers/${dev.json.id}/transition`, { to: 'available' });
  const job = (await call('POST', `/servers/${dev.json.id}/install`, { os: 'debian-12', hostname: 'vm-di.lab.example', sshKeys: [KEY] })).json;
  await until(async () => (await call('GET', `/jobs/${job.id}`)).json, (j: { tasks: { name: string; state: string }[] }) => j.tasks.some((x) => x.name === 'wait-for-installer' && x.state === 'waiting'), 60_000, 500);

  const serial = join(dir, 'di.serial.log');
  const vm: ChildProcess = ns.spawn('qemu-system-x86_64', [
    '-accel', 'tcg', '-m', '1024', '-nographic', '-no-reboot', '-serial', `file:${serial}`, '-monitor', 'none',
    '-machine', 'pc,graphics=off', '-vga', 'none',
    '-netdev', 'tap,id=n0,ifname=tap0,script=no,downscript=no',
    '-device', `virtio-net-pci,netdev=n0,mac=${mac},disable-legacy=on,romfile=/usr/lib/ipxe/qemu/pxe-virtio.rom`, '-boot', 'n',
  ]);
  const started = Date.now();
  try {
    await until(async () => JSON.stringify((await call('GET', `/jobs/${job.id}/logs`)).json), (l) => l.includes('boot: debian-12 preseed.cfg (shipped) served'), 200_000, 2000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- serial ---\n${existsSync(serial) ? readFileSync(serial, 'utf8').slice(-3000) : ''}\n--- racksmith ---\n${lab.log().slice(-3000)}`);
    });
    console.log(`Debian installer fetched its preseed ${Math.round((Date.now() - started) / 1000)} s after power-on`);
    const logs = JSON.stringify((await call('GET', `/jobs/${job.id}/logs`)).json);
    expect(logs).toContain('boot: iPXE script for debian-12 served');
    expect(logs).toContain('boot: debian-12 kernel fetched');
  } finally {
    vm.kill('SIGKILL');
    await call('POST', `/jobs/${job.id}/cancel`);
  }
});
