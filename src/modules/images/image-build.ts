import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { closeSync, copyFileSync, createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import { ProcessRunner } from '../../drivers/transport/process-runner';
import { FIRST_BOOT_SCRIPT, FIRST_BOOT_UNIT } from '../templates/first-boot';

/**
 * OS images for the image-deploy path, built from Debian's packages (`racksmith images build`):
 * mmdebstrap makes the root file system, and everything after it works on plain files, with no
 * loop device, mount or chroot beyond grub-mkimage:
 * - the root partition is `mkfs.ext4 -d <dir>` of that tree, the ESP `mkfs.vfat` + mtools;
 * - the disk is a GPT (sfdisk on the file): 1 BIOS-boot, 2 ESP, 3 root (last, so it can grow);
 * - BIOS: GRUB's boot.img in the MBR and core.img in the BIOS-boot partition, patched as
 *   grub-bios-setup would (the MBR's pointer to core.img and core.img's own block list);
 * - UEFI: GRUB as the removable-media loader EFI/BOOT/BOOTX64.EFI (no NVRAM entry needed).
 * Both GRUBs find the root by its file-system UUID and read one static grub.cfg that boots
 * /vmlinuz and /initrd.img (Debian keeps those links current across kernel updates).
 * The image boots into systemd with networkd (DHCP unless the deploy writes a static config),
 * makes its own SSH host keys on first boot and then phones home to the deploy's callback.
 */

export const IMAGE_OS = ['debian-12'] as const;
export type ImageOs = (typeof IMAGE_OS)[number];

/** The root file system's partition number in every image racksmith builds (the deploy ramdisk grows it). */
export const ROOT_PARTITION = 3;

const SUITES: Record<ImageOs, string> = { 'debian-12': 'bookworm' };

const PACKAGES = [
  'linux-image-amd64', 'systemd-sysv', 'udev', 'dbus', 'systemd-resolved', 'iproute2', 'openssh-server', 'curl', 'ca-certificates',
  'kmod', 'initramfs-tools', 'e2fsprogs', 'fdisk', 'grub-pc-bin', 'grub-efi-amd64-bin', 'grub2-common', 'less', 'procps',
];

const SECTOR = 512;
const MiB = 1 << 20;
const BIOS_START = 2048; // sectors
const BIOS_SECTORS = 2048; // 1 MiB
const ESP_START = BIOS_START + BIOS_SECTORS;
const ESP_SECTORS = 64 * 2048; // 64 MiB
const ROOT_START = ESP_START + ESP_SECTORS;

const GPT_TYPES = {
  bios: '21686148-6449-6E6F-744E-656564454649',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
};

export interface BuiltImage {
  name: string;
  os: ImageOs;
  /** `raw.gz`: a raw disk image, gzip'd (what agents serve and the deploy ramdisk unpacks as it writes). */
  format: 'raw.gz';
  file: string;
  /** Bytes of the raw disk: the smallest disk it fits on. */
  diskBytes: number;
  /** SHA-256 of `file` as served. */
  sha256: string;
  bytes: number;
  rootUuid: string;
  packages: string[];
  builtAt: string;
}

export interface ImageBuildOptions {
  os: ImageOs;
  outDir: string;
  name?: string;
  /** apt sources (files in sources.list or deb822 format, or mirror URLs); default: this host's. */
  sources?: string[];
  /** Extra packages to install. */
  include?: string[];
  workDir?: string;
  log?: (line: string) => void;
  runner?: ProcessRunner;
}

/** This host's apt sources, handed to mmdebstrap as files (never a mirror name of our own). */
export function hostAptSources(): string[] {
  const out: string[] = [];
  if (existsSync('/etc/apt/sources.list') && /^\s*deb\s/m.test(readFileSync('/etc/apt/sources.list', 'utf8'))) out.push('/etc/apt/sources.list');
  const d = '/etc/apt/sources.list.d';
  if (existsSync(d)) for (const f of readdirSync(d).sort()) if (/\.(list|sources)$/.test(f)) out.push(join(d, f));
  if (!out.length) throw new Error('this host has no apt sources: give --source (a sources.list file or a mirror URL)');
  return out;
}


const UNITS: Record<string, string> = {
  'racksmith-hostkeys.service': `[Unit]
Description=racksmith: this machine's own SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
`,
  'racksmith-firstboot.service': FIRST_BOOT_UNIT,
};

const grubCfg = (rootUuid: string) => `# racksmith image: boots the newest kernel through Debian's /vmlinuz and /initrd.img links.
set timeout=1
set default=0
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
search --no-floppy --fs-uuid --set=root ${rootUuid}
menuentry 'Debian GNU/Linux' {
  linux /vmlinuz root=UUID=${rootUuid} ro console=tty0 console=ttyS0,115200n8
  initrd /initrd.img
}
menuentry 'Debian GNU/Linux (previous kernel)' {
  linux /vmlinuz.old root=UUID=${rootUuid} ro console=tty0 console=ttyS0,115200n8
  initrd /initrd.img.old
}
`;

const earlyCfg = (rootUuid: string) => `search.fs_uuid ${rootUuid} root\nset prefix=($root)/boot/grub\n`;

/** Hashes what passes through. */
function hasher(hash: ReturnType<typeof createHash>, count: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      count.bytes += chunk.length;
      done(null, chunk);
    },
  });
}

/** Copies `src` into `disk` at byte offset `at` (the disk file is not truncated). */
async function writeAt(disk: string, src: string, at: number): Promise<void> {
  await pipeline(createReadStream(src), createWriteStream(disk, { flags: 'r+', start: at }));
}

function patch(disk: string, at: number, bytes: Buffer): void {
  const fd = openSync(disk, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, at);
  } finally {
    closeSync(fd);
  }
}

/** Kilobytes used by a tree (du's answer; the file system is sized from it). */
async function usedKiB(runner: ProcessRunner, dir: string): Promise<number> {
  const r = await runner.check('du', ['-s', '-k', '-x', dir], { timeoutMs: 300_000 });
  return Number(r.stdout.split(/\s/)[0]);
}

export async function buildOsImage(opts: ImageBuildOptions): Promise<BuiltImage> {
  const runner = opts.runner ?? new ProcessRunner();
  const log = opts.log ?? (() => undefined);
  const suite = SUITES[opts.os];
  if (!suite) throw new Error(`no image recipe for ${opts.os} (known: ${IMAGE_OS.join(', ')})`);
  for (const [bin, pkg] of [['/usr/bin/mmdebstrap', 'mmdebstrap'], ['/usr/sbin/mkfs.ext4', 'e2fsprogs'], ['/usr/sbin/mkfs.vfat', 'dosfstools'], ['/usr/bin/mcopy', 'mtools'], ['/usr/sbin/sfdisk', 'fdisk']] as const) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: install the Debian package ${pkg}`);
  }
  const name = opts.name ?? `${opts.os}-${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`;
  const work = mkdtempSync(join(opts.workDir ?? opts.outDir, `.build-${name}-`));
  const root = join(work, 'root');
  const packages = [...PACKAGES, ...(opts.include ?? [])];
  try {
    log(`mmdebstrap ${suite} (${packages.length} packages)`);
    await runner.check('mmdebstrap', ['--variant=apt', '--mode=root', `--include=${packages.join(',')}`, '--aptopt=Acquire::Retries "3"', suite, root, ...(opts.sources ?? hostAptSources())], {
      timeoutMs: 60 * 60_000,
      env: { DEBIAN_FRONTEND: 'noninteractive' },
    });

    const rootUuid = randomUUID();
    const espSerial = randomBytes(4).toString('hex').toUpperCase();
    log('configuring the tree');
    writeFileSync(join(root, 'etc/fstab'), `UUID=${rootUuid} / ext4 errors=remount-ro 0 1\nUUID=${espSerial.slice(0, 4)}-${espSerial.slice(4)} /boot/efi vfat umask=0077,nofail 0 2\n`);
    mkdirSync(join(root, 'boot/efi'), { recursive: true });
    writeFileSync(join(root, 'etc/hostname'), 'debian\n');
    writeFileSync(join(root, 'etc/hosts'), '127.0.0.1 localhost\n127.0.1.1 debian\n::1 localhost ip6-localhost ip6-loopback\n');
    // Each machine gets its own machine-id and SSH host keys on its first boot.
    writeFileSync(join(root, 'etc/machine-id'), '');
    for (const f of readdirSync(join(root, 'etc/ssh'))) if (/^ssh_host_/.test(f)) unlinkSync(join(root, 'etc/ssh', f));
    mkdirSync(join(root, 'etc/systemd/network'), { recursive: true });
    writeFileSync(join(root, 'etc/systemd/network/90-racksmith-dhcp.network'), '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n');
    writeFileSync(join(root, 'usr/local/sbin/racksmith-firstboot'), FIRST_BOOT_SCRIPT, { mode: 0o755 });
    mkdirSync(join(root, 'etc/racksmith'), { recursive: true, mode: 0o700 });
    for (const [unit, text] of Object.entries(UNITS)) writeFileSync(join(root, 'etc/systemd/system', unit), text);
    await runner.check('chroot', [root, 'systemctl', 'enable', 'systemd-networkd', 'systemd-resolved', 'racksmith-hostkeys.service', 'racksmith-firstboot.service'], { timeoutMs: 60_000 });
    // resolv.conf from systemd-resolved's stub.
    rmSync(join(root, 'etc/resolv.conf'), { force: true });
    symlinkSync('../run/systemd/resolve/stub-resolv.conf', join(root, 'etc/resolv.conf'));
    rmSync(join(root, 'var/lib/apt/lists'), { recursive: true, force: true });
    mkdirSync(join(root, 'var/lib/apt/lists/partial'), { recursive: true });

    log('GRUB for BIOS and UEFI');
    const grub = join(root, 'boot/grub');
    mkdirSync(grub, { recursive: true });
    writeFileSync(join(grub, 'grub.cfg'), grubCfg(rootUuid));
    for (const platform of ['i386-pc', 'x86_64-efi']) {
      const from = join(root, 'usr/lib/grub', platform);
      mkdirSync(join(grub, platform), { recursive: true });
      for (const f of readdirSync(from)) if (/\.(mod|lst)$/.test(f)) copyFileSync(join(from, f), join(grub, platform, f));
    }
    writeFileSync(join(root, 'tmp/racksmith-early.cfg'), earlyCfg(rootUuid));
    const mk = (platform: string, out: string, modules: string[]) =>
      runner.check('chroot', [root, 'grub-mkimage', '-O', platform, '-o', out, '-c', '/tmp/racksmith-early.cfg', '-p', '/boot/grub', ...modules], { timeoutMs: 120_000 });
    await mk('i386-pc', '/tmp/core.img', ['biosdisk', 'part_gpt', 'ext2', 'search_fs_uuid', 'normal', 'linux', 'serial', 'terminal', 'echo']);
    await mk('x86_64-efi', '/tmp/BOOTX64.EFI', ['part_gpt', 'ext2', 'fat', 'search_fs_uuid', 'normal', 'linux', 'serial', 'terminal', 'echo', 'efi_gop']);
    const coreImg = readFileSync(join(root, 'tmp/core.img'));
    const bootImg = readFileSync(join(root, 'usr/lib/grub/i386-pc/boot.img'));
    copyFileSync(join(root, 'tmp/BOOTX64.EFI'), join(work, 'BOOTX64.EFI'));
    for (const f of ['core.img', 'BOOTX64.EFI', 'racksmith-early.cfg']) unlinkSync(join(root, 'tmp', f));
    if (coreImg.length > BIOS_SECTORS * SECTOR) throw new Error(`GRUB's core.img (${coreImg.length} bytes) does not fit the BIOS boot partition`);

    log('root file system');
    const used = await usedKiB(runner, root);
    // Room for the first boot and a kernel update; the deploy grows it to the disk.
    const rootMiB = Math.ceil((used * 1.25) / 1024 / 64) * 64 + 256;
    const rootFs = join(work, 'root.ext4');
    // GRUB 2.06 cannot read metadata_csum_seed or orphan_file: keep them off.
    await runner.check('mkfs.ext4', ['-q', '-F', '-L', 'root', '-U', rootUuid, '-O', '^metadata_csum_seed,^orphan_file', '-d', root, rootFs, `${rootMiB}M`], { timeoutMs: 30 * 60_000 });
    const esp = join(work, 'esp.img');
    await runner.check('mkfs.vfat', ['-C', '-i', espSerial, '-n', 'EFI', esp, String((ESP_SECTORS * SECTOR) / 1024)], { timeoutMs: 60_000 });
    await runner.check('mmd', ['-i', esp, '::/EFI', '::/EFI/BOOT'], { timeoutMs: 60_000 });
    await runner.check('mcopy', ['-i', esp, join(work, 'BOOTX64.EFI'), '::/EFI/BOOT/BOOTX64.EFI'], { timeoutMs: 60_000 });

    log('disk');
    const rootSectors = (rootMiB * MiB) / SECTOR;
    const diskBytes = (ROOT_START + rootSectors + 2048) * SECTOR;
    const raw = join(work, 'disk.raw');
    writeFileSync(raw, '');
    truncateSync(raw, diskBytes);
    const table = [
      'label: gpt',
      `start=${BIOS_START}, size=${BIOS_SECTORS}, type=${GPT_TYPES.bios}, name="bios-boot"`,
      `start=${ESP_START}, size=${ESP_SECTORS}, type=${GPT_TYPES.esp}, name="esp"`,
      `start=${ROOT_START}, size=${rootSectors}, type=${GPT_TYPES.linux}, name="root"`,
      '',
    ].join('\n');
    await runner.check('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', raw], { timeoutMs: 60_000, input: table });
    await writeAt(raw, esp, ESP_START * SECTOR);
    await writeAt(raw, rootFs, ROOT_START * SECTOR);
    // BIOS: boot.img's code into the MBR (its partition table stays), pointing at core.img's first
    // sector (offset 0x5c, LBA); core.img's first sector lists the rest (its last 12 bytes: LBA, count).
    const mbr = Buffer.from(bootImg.subarray(0, 440));
    mbr.writeBigUInt64LE(BigInt(BIOS_START), 0x5c);
    patch(raw, 0, mbr);
    const core = Buffer.from(coreImg);
    const coreSectors = Math.ceil(core.length / SECTOR);
    core.writeBigUInt64LE(BigInt(BIOS_START + 1), SECTOR - 12);
    core.writeUInt16LE(coreSectors - 1, SECTOR - 4);
    patch(raw, BIOS_START * SECTOR, core);

    log('compressing and hashing');
    mkdirSync(opts.outDir, { recursive: true });
    const file = join(opts.outDir, `${name}.raw.gz`);
    const hash = createHash('sha256');
    const count = { bytes: 0 };
    await pipeline(createReadStream(raw), createGzip({ level: 6 }), hasher(hash, count), createWriteStream(file));
    const built: BuiltImage = {
      name,
      os: opts.os,
      format: 'raw.gz',
      file,
      diskBytes,
      sha256: hash.digest('hex'),
      bytes: count.bytes,
      rootUuid,
      packages,
      builtAt: new Date().toISOString(),
    };
    writeFileSync(join(opts.outDir, `${name}.json`), `${JSON.stringify(built, null, 2)}\n`);
    return built;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
