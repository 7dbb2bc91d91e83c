import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostAptSources } from '../../src/modules/images/image-build';

/**
 * A local Debian repository for the real installer, from Debian's packages by name through apt
 * (LAB.md: nothing else is reachable): the base system of priority required and important plus
 * what the preseed installs (kernel, GRUB for BIOS and for UEFI, openssh-server, ...), each with
 * its dependencies, and the installer's own components (udebs, `main/debian-installer`) for the
 * kernel of the netboot installer. Indexed with dpkg-scanpackages and apt-ftparchive as suite
 * `bookworm`, unsigned (the preseed accepts it: `mirrorUnsigned` in the boot-asset manifest).
 *
 * Udebs apt lists but cannot fetch are reported in `missingUdebs` and stay in the udeb index
 * without their files: the installer stops at the first one it needs, with a 404 that names it.
 */
export interface LocalRepo {
  dir: string;
  debs: number;
  udebs: number;
  /** Listed in the udeb index of this host's mirror, not fetchable from it (404). */
  missingUdebs: string[];
  /** The kernel ABI of the netboot installer, e.g. 6.1.0-50-amd64. */
  abi: string;
}

const SUITE = 'bookworm';
/** What racksmith's debian-12 preseed and the installer's own steps put on the disk, besides priority required/important. */
const BASE = ['linux-image-amd64', 'openssh-server', 'curl', 'tasksel', 'tasksel-data', 'popularity-contest', 'initramfs-tools', 'busybox', 'zstd', 'console-setup', 'keyboard-configuration', 'locales', 'discover', 'laptop-detect', 'installation-report', 'dmidecode', 'mdadm', 'lvm2', 'usr-is-merged', 'os-prober', 'eject', 'pciutils', 'usbutils'];
/** GRUB for BIOS and GRUB for UEFI conflict: each is resolved on its own. */
const LOADERS = [['grub-pc'], ['grub-efi-amd64', 'grub-efi-amd64-signed', 'shim-signed', 'efibootmgr']];

export function buildLocalRepo(dir: string, netbootInitrd: string, log: (line: string) => void = () => undefined): LocalRepo {
  const done = join(dir, 'repo.json');
  if (existsSync(done)) return JSON.parse(readFileSync(done, 'utf8')) as LocalRepo;
  const apt = join(dir, '.apt');
  for (const d of ['state/lists/partial', 'cache/archives/partial', 'parts', 'udebs']) mkdirSync(join(apt, d), { recursive: true });
  // This host's sources, plus the installer's component of the same Debian mirror.
  const sources = hostAptSources();
  sources.forEach((f, i) => copyFileSync(f, join(apt, 'parts', `${i}-${f.split('/').pop()}`)));
  const uri = sources.map((f) => readFileSync(f, 'utf8').match(/^URIs:\s*(\S+)/m)?.[1] ?? readFileSync(f, 'utf8').match(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m)?.[1]).find(Boolean);
  if (!uri) throw new Error('no Debian bookworm source on this host to take the installer components from');
  writeFileSync(join(apt, 'parts', 'udeb.sources'), `Types: deb\nURIs: ${uri}\nSuites: ${SUITE}\nComponents: main/debian-installer\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`);
  writeFileSync(join(apt, 'status'), '');
  writeFileSync(
    join(apt, 'apt.conf'),
    [
      `Dir::State "${apt}/state";`,
      `Dir::State::status "${apt}/status";`,
      `Dir::Cache "${apt}/cache";`,
      'Dir::Etc::SourceList "/dev/null";',
      `Dir::Etc::SourceParts "${apt}/parts";`,
      'APT::Install-Recommends "false";',
      'APT::Architecture "amd64";',
      'Debug::NoLocking "true";',
      '',
    ].join('\n'),
  );
  const env = { ...process.env, APT_CONFIG: join(apt, 'apt.conf'), DEBIAN_FRONTEND: 'noninteractive' };
  const run = (cmd: string, args: string[], cwd?: string) => execFileSync(cmd, args, { env, cwd, encoding: 'utf8', maxBuffer: 256 * 2 ** 20, stdio: ['ignore', 'pipe', 'pipe'] });
  log('apt-get update (this host\'s sources and main/debian-installer)');
  run('apt-get', ['update', '-qq']);

  const udebIndex = readdirSync(join(apt, 'state/lists')).find((f) => f.includes('debian-installer') && f.includes('Packages'));
  if (!udebIndex) throw new Error('the mirror lists no main/debian-installer packages');
  const udebNames = new Set([...run('/usr/lib/apt/apt-helper', ['cat-file', join(apt, 'state/lists', udebIndex)]).matchAll(/^Package: (\S+)/gm)].map((m) => m[1]!));
  const priority = [...run('apt-cache', ['dumpavail']).matchAll(/^Package: (\S+)\n(?:[^\n]+\n)*?Priority: (required|important)$/gm)].map((m) => m[1]!).filter((p) => !udebNames.has(p));
  const wanted = [...new Set(priority)].sort();
  for (const loader of LOADERS) {
    log(`apt-get --download-only: ${wanted.length} packages of priority required/important, ${BASE.length} more, ${loader.join(' ')}`);
    run('apt-get', ['-y', '-qq', '--download-only', 'install', ...wanted, ...BASE, ...loader]);
  }

  // The installer's components for the netboot kernel: every udeb but other kernels' modules.
  const abi = run('sh', ['-c', `zcat '${netbootInitrd}' | cpio -t 2>/dev/null | sed -n 's#^lib/modules/\\([^/]*\\)$#\\1#p' | head -n 1`]).trim();
  if (!abi) throw new Error(`no lib/modules/<version> in ${netbootInitrd}`);
  const udebs = [...udebNames].filter((n) => !/-\d+\.\d+\.\d+-\d+-/.test(n) || n.includes(`-${abi}-`)).sort();
  log(`apt-get download: ${udebs.length} udebs for ${abi}`);
  // Unfetchable ones fail the command; the files that arrived are what counts.
  spawnSync('apt-get', ['download', '-qq', ...udebs], { env, cwd: join(apt, 'udebs'), encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const fetched = new Set(readdirSync(join(apt, 'udebs')).filter((f) => f.endsWith('.udeb')).map((f) => f.split('_')[0]!));
  const missingUdebs = udebs.filter((n) => !fetched.has(n));

  const pool = join(dir, 'pool', 'main');
  mkdirSync(pool, { recursive: true });
  // apt names a file with an epoch `name_1%3a1.2_amd64.deb`; an archive's pool leaves the epoch out.
  const poolName = (f: string) => f.replace(/_\d+%3a/, '_');
  for (const f of readdirSync(join(apt, 'cache/archives'))) if (f.endsWith('.deb')) renameSync(join(apt, 'cache/archives', f), join(pool, poolName(f)));
  for (const f of readdirSync(join(apt, 'udebs'))) if (f.endsWith('.udeb')) renameSync(join(apt, 'udebs', f), join(pool, poolName(f)));
  const dists = join(dir, 'dists', SUITE);
  // The udeb index also keeps the mirror's entries for the udebs it would not give (their files
  // are not here): the installer asks for them, and the request shows which one it needed.
  const unfetchable = new Set(missingUdebs);
  const listedOnly = run('/usr/lib/apt/apt-helper', ['cat-file', join(apt, 'state/lists', udebIndex)])
    .split(/\n\n+/)
    .filter((stanza) => unfetchable.has(stanza.match(/^Package: (\S+)/m)?.[1] ?? ''))
    .map((stanza) => `${stanza.trim()}\n\n`)
    .join('');
  for (const [type, sub] of [['deb', 'main/binary-amd64'], ['udeb', 'main/debian-installer/binary-amd64']] as const) {
    mkdirSync(join(dists, sub), { recursive: true });
    writeFileSync(join(dists, sub, 'Packages'), run('dpkg-scanpackages', ['-m', '-t', type, 'pool/main', '/dev/null'], dir) + (type === 'udeb' ? listedOnly : ''));
    run('gzip', ['-k9f', join(dists, sub, 'Packages')]);
    // The installer's choose-mirror takes the architecture as supported only with this file.
    writeFileSync(join(dists, sub, 'Release'), `Archive: ${SUITE}\nComponent: ${sub.replace(/\/binary-amd64$/, '')}\nOrigin: racksmith-lab\nArchitecture: amd64\n`);
  }
  const o = (k: string, v: string) => ['-o', `APT::FTPArchive::Release::${k}=${v}`];
  writeFileSync(join(dists, 'Release'), run('apt-ftparchive', [...o('Origin', 'racksmith-lab'), ...o('Suite', SUITE), ...o('Codename', SUITE), ...o('Components', 'main'), ...o('Architectures', 'amd64'), 'release', '.'], dists));
  const repo: LocalRepo = { dir, debs: readdirSync(pool).filter((f) => f.endsWith('.deb')).length, udebs: fetched.size, missingUdebs, abi };
  writeFileSync(done, JSON.stringify(repo, null, 2));
  return repo;
}
