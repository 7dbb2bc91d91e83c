import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { createTestDatabase, type TestDatabase } from '../support/db';
import { createNetns, exited, labVm, requireNetbootPeers, startLabRacksmith, type LabRacksmith, type Netns } from '../support/netboot-lab';
import { buildLocalRepo, type LocalRepo } from '../support/local-repo';
import { requirePeer } from '../support/peers';
import { until } from '../support/wait';

/**
 * The template path to a real disk (issue: a real OS on a real disk, §2): the real Debian
 * installer, booted through racksmith's chain with racksmith's preseed, installs from a local
 * repository built from Debian's packages by name (test/support/local-repo.ts) and served on the
 * lab's provisioning network, and nothing else. When every installer component could be fetched,
 * the install runs to its end: late command, reboot into the disk, SSH login with the key. When
 * this host's mirror does not give some components (see `missingUdebs`), the test proves the
 * installer got as far as our repository lets it: it read our Release and fetched components from
 * it, and the components it asked for and did not get are exactly ones the mirror lacks.
 *
 * TEST_REPO_DIR keeps the repository between runs.
 */
jest.setTimeout(3_600_000);

const DI = '/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64';
const REPO_PORT = 8091;
let dir: string;
let db: TestDatabase;
let ns: Netns;
let lab: LabRacksmith;
let repo: LocalRepo;
let key: { priv: string; pub: string };
const call = (method: string, path: string, body?: unknown) => lab.call(method, path, body);
const requests = () => (existsSync(join(dir, 'repo.log')) ? readFileSync(join(dir, 'repo.log'), 'utf8').trim().split('\n') : []);

beforeAll(async () => {
  requireNetbootPeers();
  requirePeer(`${DI}/linux`, 'debian-installer-12-netboot-amd64');
  requirePeer('/usr/bin/dpkg-scanpackages', 'dpkg-dev');
  requirePeer('/usr/bin/apt-ftparchive', 'apt-utils');
  dir = mkdtempSync(join(tmpdir(), 'racksmith-di-disk-'));
  const repoDir = process.env.TEST_REPO_DIR || join(dir, 'repo');
  mkdirSync(repoDir, { recursive: true });
  const t0 = Date.now();
  repo = buildLocalRepo(repoDir, `${DI}/initrd.gz`, (l) => console.log(`local repo: ${l}`));
  console.log(`local repo: ${repo.debs} debs, ${repo.udebs} udebs for ${repo.abi}, ${repo.missingUdebs.length} udebs not fetchable (${Math.round((Date.now() - t0) / 1000)} s)`);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'customer@example', '-f', join(dir, 'customer')]);
  key = { priv: join(dir, 'customer'), pub: readFileSync(join(dir, 'customer.pub'), 'utf8').trim() };

  db = await createTestDatabase();
  ns = createNetns('did');
  // The repository on the provisioning network, each request logged as "<status> <path>".
  const server = `const fs = require('node:fs'), path = require('node:path'); const root = ${JSON.stringify(repo.dir)};
require('node:http').createServer((q, r) => {
  const url = path.posix.normalize('/' + decodeURIComponent(q.url.split('?')[0]));
  const p = path.join(root, url);
  fs.stat(p, (err, st) => {
    const ok = !err && st.isFile();
    fs.appendFileSync(${JSON.stringify(join(dir, 'repo.log'))}, (ok ? 200 : 404) + ' ' + url + '\\n');
    if (!ok) return r.writeHead(404).end();
    r.writeHead(200, { 'content-length': st.size });
    if (q.method === 'HEAD') return r.end();
    fs.createReadStream(p).pipe(r);
  });
}).listen(${REPO_PORT}, ${JSON.stringify(ns.bridgeAddress)});`;
  ns.spawn(process.execPath, ['-e', server]);
  writeFileSync(
    join(dir, 'assets.yaml'),
    `debian-12:\n  kernel: ${DI}/linux\n  initrd: ${DI}/initrd.gz\n` +
      '  cmdline: auto=true priority=critical url={{templateBase}}preseed.cfg hostname={{hostname}} domain={{domain}} interface=auto console=ttyS0,115200n8\n' +
      `  mirror: http://${ns.bridgeAddress}:${REPO_PORT}/\n  mirrorUnsigned: true\n  mirrorOnly: true\n  disks: [/dev/vda]\n`,
  );
  lab = await startLabRacksmith(ns, db.name, { RACKSMITH_BOOT_ASSETS: join(dir, 'assets.yaml') });
});

afterAll(async () => {
  await ns?.destroy();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function ssh(address: string, command: string): string {
  return execFileSync('ip', ['netns', 'exec', ns.name, 'ssh', '-i', key.priv, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10', `root@${address}`, command], {
    encoding: 'utf8',
    timeout: 60_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

it('the Debian installer, driven by racksmith\'s preseed, installs from the local repository as far as its components allow; with all of them, to a disk that boots and takes the key', async () => {
  const modelId = (await call('POST', '/hardware-models', { vendor: 'Lab', model: 'DiVM', heightU: 1, bmcDriver: 'fake', disks: [{ kind: 'ssd', sizeGb: 8, count: 1 }] })).json.id;
  const mac = '52:54:00:e2:d2:01';
  const address = '10.77.0.70';
  const dev = await call('POST', '/devices', { site: 'lab', name: 'vm-di-disk', role: 'rented-server', modelId, bmc: { address: '127.0.0.2' }, nics: [{ name: 'eth0', mac, pxe: true, ip: address }] });
  await call('POST', `/servers/${dev.json.id}/transition`, { to: 'available' });
  const job = (await call('POST', `/servers/${dev.json.id}/install`, { os: 'debian-12', hostname: 'di-disk.customer.example', sshKeys: [key.pub] })).json;
  await until(async () => (await call('GET', `/jobs/${job.id}`)).json, (j: { tasks: { name: string; state: string }[] }) => j.tasks.some((x) => x.name === 'wait-for-installer' && x.state === 'waiting'), 60_000, 500);
  const disk = join(dir, 'di.disk.raw');
  writeFileSync(disk, '');
  truncateSync(disk, 8 * 2 ** 30);
  const serial = join(dir, 'di.serial.log');
  const text = () => (existsSync(serial) ? readFileSync(serial, 'utf8').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '') : '');
  const started = Date.now();
  let vm: ChildProcess | undefined = labVm(ns, dir, 'bios', mac, serial, { disk, reboot: true, memMb: 1536 });
  try {
    // The installer found our mirror: it read the Release and the component index, and fetched components.
    await until(async () => requests(), (r) => r.some((l) => /^200 .*\.udeb$/.test(l)), 900_000, 3000).catch((err: Error) => {
      throw new Error(`${err.message.slice(0, 300)}\n--- serial ---\n${text().slice(-4000)}\n--- repository ---\n${requests().slice(-40).join('\n')}`);
    });
    expect(requests()).toContain(`200 /dists/bookworm/Release`);
    expect(requests().some((l) => l.startsWith('200 /dists/bookworm/main/debian-installer/binary-amd64/Packages'))).toBe(true);
    console.log(`installer: first component from the local repository ${Math.round((Date.now() - started) / 1000)} s after power-on`);

    if (repo.missingUdebs.length) {
      // As far as it goes: the installer stops at a component this host's mirror does not give.
      const asked = await until(
        async () => requests().filter((l) => /^404 .*\.udeb$/.test(l)),
        (r) => r.length > 0,
        900_000,
        3000,
      ).catch((err: Error) => {
        throw new Error(`${err.message.slice(0, 300)}\n--- serial ---\n${text().slice(-4000)}\n--- repository ---\n${requests().slice(-40).join('\n')}`);
      });
      // It asked for exactly what the repository says it could not get, never for something it has.
      const names = asked.map((l) => l.split('/').pop()!.split('_')[0]!);
      console.log(`installer: stopped ${Math.round((Date.now() - started) / 1000)} s after power-on, wanting ${[...new Set(names)].join(', ')}; fetched ${requests().filter((l) => /^200 .*\.udeb$/.test(l)).length} components first`);
      for (const n of names) expect(repo.missingUdebs).toContain(n);
      return;
    }

    const done = await until(async () => (await call('GET', `/jobs/${job.id}`)).json, (j: { state: string }) => ['succeeded', 'failed', 'cancelled'].includes(j.state), 3_000_000, 5000).catch((err: Error) => {
      throw new Error(`${err.message.slice(0, 300)}\n--- serial ---\n${text().slice(-4000)}`);
    });
    console.log(`installer: power-on to the late command's callback and the job's end: ${Math.round((Date.now() - started) / 1000)} s`);
    expect(done.state).toBe('succeeded');
    const out = await until(
      async () => {
        try {
          return ssh(address, 'hostname; cat /etc/os-release');
        } catch {
          return '';
        }
      },
      (o) => o.length > 0,
      900_000,
      5000,
    );
    console.log(`installer: power-on to an SSH login into the installed disk: ${Math.round((Date.now() - started) / 1000)} s`);
    expect(out.split('\n')[0]).toBe('di-disk');
    expect(out).toContain('VERSION_ID="12"');
    // Nothing came from anywhere but the local repository.
    expect(requests().filter((l) => l.startsWith('404 ') && !l.includes('/Translation-') && !l.endsWith('.gpg') && !l.endsWith('/InRelease'))).toEqual([]);
  } finally {
    if (vm && vm.exitCode === null) vm.kill('SIGKILL');
    if (vm) await exited(vm, 10_000);
    vm = undefined;
  }
});
