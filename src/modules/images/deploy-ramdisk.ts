import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessRunner } from '../../drivers/transport/process-runner';
import { busyboxInitramfs, FIXED_DISKS, hostKernel, TAKE_LEASE, WIPE_MODULES } from '../boot/wipe-image';
import { ROOT_PARTITION } from './image-build';

/**
 * The deploy ramdisk an image install boots (`racksmith images deploy-ramdisk` writes it where the
 * boot-asset manifest's `deploy` entry points): this host's kernel and a busybox initramfs with the
 * storage and network drivers, ext4, and sfdisk/e2fsck/resize2fs from this host (with their
 * libraries). Its init:
 * 1. takes a DHCP lease and reports `started`;
 * 2. streams the image over HTTP onto the disk, hashing the bytes as they arrive (SHA-256 of the
 *    file as served); on a mismatch it clears the disk's first and last MiB so the half-written
 *    disk can never boot, reports `failed` and powers off;
 * 3. moves the GPT's backup header to the disk's end, grows the root partition to fill the disk,
 *    checks and grows its file system;
 * 4. mounts it and runs the deploy's configuration script (hostname, keys, password hash,
 *    network, the first-boot phone-home), fetched from racksmith with the job's token;
 * 5. reports `done` and reboots: the disk boots next (racksmith hands over to it).
 */

export const DEPLOY_MODULES = [...WIPE_MODULES, 'ext4', 'crc32c_generic'] as const;

const TOOLS = ['/usr/sbin/sfdisk', '/usr/sbin/e2fsck', '/usr/sbin/resize2fs'];

export const DEPLOY_INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
export PATH=/bin:/sbin LD_LIBRARY_PATH=/lib
for m in $(cat /lib/modules.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
sleep 2
rootpart=${ROOT_PARTITION}; format=raw.gz
for word in $(cat /proc/cmdline); do
  case "$word" in
    racksmith.callback=*) cb="\${word#racksmith.callback=}" ;;
    racksmith.token=*) token="\${word#racksmith.token=}" ;;
    racksmith.image=*) image="\${word#racksmith.image=}" ;;
    racksmith.sha256=*) want="\${word#racksmith.sha256=}" ;;
    racksmith.format=*) format="\${word#racksmith.format=}" ;;
    racksmith.config=*) config="\${word#racksmith.config=}" ;;
    racksmith.disk=*) disk="\${word#racksmith.disk=}" ;;
    racksmith.rootpart=*) rootpart="\${word#racksmith.rootpart=}" ;;
  esac
done
report() {
  msg=$(echo "$2" | tr -d '"\\\\' | tr '\\n' ' ')
  echo "racksmith: $1: $msg"
  timeout 30 wget -q -O /dev/null --header 'Content-Type: application/json' --post-data "{\\"token\\":\\"$token\\",\\"status\\":\\"$1\\",\\"message\\":\\"$msg\\"}" "$cb" || echo "racksmith: could not report $1"
}
fail() { report failed "$1"; sync; poweroff -f; }
${TAKE_LEASE}${FIXED_DISKS}[ -n "$disk" ] || { d=$(fixed_disks | head -n 1); [ -n "$d" ] && disk=/dev/$d; }
[ -n "$disk" ] && [ -b "$disk" ] || fail "no disk to write (a storage driver missing from the deploy ramdisk?)"
case "$disk" in *[0-9]) part="\${disk}p$rootpart" ;; *) part="$disk$rootpart" ;; esac
mib=$(( $(cat /sys/block/\${disk#/dev/}/size) / 2048 ))
report started "writing the image to $disk ($mib MiB)"
mkfifo /tmp/hash
sha256sum < /tmp/hash > /tmp/sum &
hasher=$!
if [ "$format" = raw.gz ]; then
  wget -q -O - "$image" | tee /tmp/hash | gunzip -c | dd of="$disk" bs=1M conv=fsync 2>/tmp/dd; rc=$?
else
  wget -q -O - "$image" | tee /tmp/hash | dd of="$disk" bs=1M conv=fsync 2>/tmp/dd; rc=$?
fi
wait $hasher
got=$(cut -d' ' -f1 /tmp/sum)
if [ "$got" != "$want" ]; then
  dd if=/dev/zero of="$disk" bs=1M count=1 conv=fsync 2>/dev/null
  dd if=/dev/zero of="$disk" bs=1M seek=$((mib - 1)) count=1 conv=fsync 2>/dev/null
  fail "image checksum mismatch: expected $want, got $got (disk cleared, not booted)"
fi
[ $rc = 0 ] || fail "writing the image failed: $(tail -n 2 /tmp/dd)"
sync
echo "racksmith: image written ($(tail -n 1 /tmp/dd))"
sfdisk --relocate gpt-bak-std "$disk" >/tmp/grow 2>&1 || fail "GPT relocation: $(tail -n 2 /tmp/grow)"
echo ', +' | sfdisk --no-reread -N "$rootpart" "$disk" >>/tmp/grow 2>&1 || fail "growing partition $rootpart: $(tail -n 2 /tmp/grow)"
blockdev --rereadpt "$disk" 2>/dev/null; sleep 1
[ -b "$part" ] || fail "$part did not appear after the partition table was written"
e2fsck -f -y "$part" >>/tmp/grow 2>&1; [ $? -le 1 ] || fail "e2fsck $part: $(tail -n 2 /tmp/grow)"
resize2fs "$part" >>/tmp/grow 2>&1 || fail "resize2fs $part: $(tail -n 2 /tmp/grow)"
rootmib=$(( $(cat /sys/class/block/\${part#/dev/}/size) / 2048 ))
mkdir -p /mnt
mount -t ext4 "$part" /mnt || fail "cannot mount $part"
wget -q -O /tmp/config.sh "$config" || { umount /mnt; fail "cannot fetch the configuration $config"; }
sh /tmp/config.sh /mnt > /tmp/config.log 2>&1 || { umount /mnt; fail "configuration: $(tail -n 2 /tmp/config.log)"; }
umount /mnt; sync
report done "image written to $disk (sha256 ok), root grown to $rootmib MiB, configured"
reboot -f
`;

/** `file` and the shared libraries it loads (ldd's answer), as initramfs paths under lib/. */
async function withLibraries(runner: ProcessRunner, file: string): Promise<string[]> {
  const r = await runner.check('ldd', [file], { timeoutMs: 30_000 });
  return [...r.stdout.matchAll(/(\/\S+\.so[\w.]*) \(0x/g)].map((m) => m[1]!);
}

/** Write vmlinuz and initrd.gz of the deploy ramdisk into `outDir`. */
export async function buildDeployRamdisk(outDir: string, runner = new ProcessRunner()): Promise<{ kernel: string; initrd: string; modules: string[]; bytes: number }> {
  const { kernel, moduleRoot } = hostKernel();
  const libs = new Set<string>();
  for (const t of TOOLS) {
    if (!existsSync(t)) throw new Error(`${t} is missing: install the Debian packages fdisk and e2fsprogs`);
    for (const l of await withLibraries(runner, t)) libs.add(l);
  }
  const loader = [...libs].find((l) => /ld-linux/.test(l));
  const { image, modules } = busyboxInitramfs(DEPLOY_INIT, moduleRoot, DEPLOY_MODULES, '/bin/busybox', [
    ...TOOLS.map((t) => ({ path: `bin/${t.split('/').pop()}`, content: readFileSync(t), mode: 0o755 })),
    ...[...libs].filter((l) => l !== loader).map((l) => ({ path: `lib/${l.split('/').pop()}`, content: readFileSync(realpathSync(l)), mode: 0o755 })),
    // The dynamic loader where the programs look for it.
    ...(loader ? [{ path: loader.replace(/^\//, ''), content: readFileSync(realpathSync(loader)), mode: 0o755 }] : []),
  ]);
  mkdirSync(outDir, { recursive: true });
  const k = join(outDir, 'vmlinuz');
  const i = join(outDir, 'initrd.gz');
  copyFileSync(kernel, k);
  writeFileSync(i, image);
  return { kernel: k, initrd: i, modules, bytes: image.length };
}
