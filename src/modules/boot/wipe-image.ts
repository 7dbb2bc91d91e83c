import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initramfs, modulesWithDependencies, type InitramfsFile } from './initramfs';

/**
 * The disk-wipe image a wipe job boots (`racksmith boot wipe-image` writes it where the manifest's
 * `wipe` entry points): this host's Debian kernel and an initramfs of busybox, the storage and
 * network drivers, and an init that takes a DHCP lease, clears every fixed disk and reports to the
 * job's callback URL, then powers off.
 */

/** Storage and network drivers of common servers (plus QEMU's), with their dependencies. */
export const WIPE_MODULES = [
  'ahci', 'sd_mod', 'nvme', 'virtio_blk', 'virtio_scsi', 'megaraid_sas', 'mpt3sas', 'hpsa', 'smartpqi', 'aacraid',
  'virtio_pci', 'virtio_net', 'e1000', 'e1000e', 'igb', 'ixgbe', 'i40e', 'ice', 'bnxt_en', 'tg3', 'bnx2x', 'mlx5_core', 'r8169',
] as const;

/** busybox udhcpc's hook: configure the address and default route it was given. */
export const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "\${router%% *}"
    echo "racksmith: lease $ip on $interface" ;;
esac
exit 0
`;

/** Shell for a racksmith ramdisk's init: a DHCP lease on the first NIC that gets one. */
export const TAKE_LEASE = `ip link set lo up
for i in $(ls /sys/class/net); do
  [ "$i" = lo ] && continue
  ip link set "$i" up
  udhcpc -i "$i" -s /bin/udhcpc.script -q -t 5 -n && break
done
`;

/** Shell: \`fixed_disks\` prints the names of the fixed, writable whole disks (no partitions, no removable media). */
export const FIXED_DISKS = `fixed_disks() {
  for d in $(ls /sys/block); do
    case "$d" in sd*|vd*|xvd*|nvme*n*) ;; *) continue ;; esac
    case "$d" in nvme*n*p*) continue ;; esac
    [ "$(cat /sys/block/$d/removable)" = 1 ] && continue
    [ "$(cat /sys/block/$d/ro)" = 1 ] && continue
    echo "$d"
  done
}
`;

/**
 * quick (default): the first and last 16 MiB of each disk (partition tables, the GPT backup,
 * RAID and LVM metadata, file system signatures). full: every byte (racksmith.wipe=full on the
 * command line; hours on big disks).
 */
export const WIPE_INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /lib/modules.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
sleep 2
mode=quick
for word in $(cat /proc/cmdline); do
  case "$word" in
    racksmith.callback=*) cb="\${word#racksmith.callback=}" ;;
    racksmith.token=*) token="\${word#racksmith.token=}" ;;
    racksmith.wipe=*) mode="\${word#racksmith.wipe=}" ;;
  esac
done
${TAKE_LEASE}${FIXED_DISKS}wiped=""; failed=""
for d in $(fixed_disks); do
  mib=$(( $(cat /sys/block/$d/size) / 2048 ))
  echo "racksmith: wiping /dev/$d ($mib MiB, $mode)"
  if [ "$mode" = full ]; then
    dd if=/dev/zero of=/dev/$d bs=1M count=$mib conv=fsync 2>/dev/null; rc=$?
  else
    n=16; [ $mib -lt 32 ] && n=$(( (mib + 1) / 2 ))
    dd if=/dev/zero of=/dev/$d bs=1M count=$n conv=fsync 2>/dev/null && dd if=/dev/zero of=/dev/$d bs=1M seek=$((mib - n)) count=$n conv=fsync 2>/dev/null; rc=$?
  fi
  if [ $rc = 0 ]; then wiped="$wiped $d:\${mib}MiB"; else failed="$failed $d"; fi
done
sync
if [ -n "$failed" ]; then status=failed; msg="could not wipe$failed"
elif [ -z "$wiped" ]; then status=failed; msg="no disks found (a storage driver missing from the wipe image?)"
else status=done; msg="wiped ($mode)$wiped"; fi
echo "racksmith: $msg"
wget -q -O - --header 'Content-Type: application/json' --post-data "{\\"token\\":\\"$token\\",\\"status\\":\\"$status\\",\\"message\\":\\"$msg\\"}" "$cb" && echo "racksmith: reported"
poweroff -f
`;

/** The newest Debian kernel on this host: /boot/vmlinuz-<version> and its modules directory. */
export function hostKernel(): { kernel: string; moduleRoot: string } {
  const kernels = existsSync('/boot') ? readdirSync('/boot').filter((f) => /^vmlinuz-/.test(f)).sort() : [];
  if (!kernels.length) throw new Error('no /boot/vmlinuz-*: install a kernel (Debian package linux-image-amd64)');
  const version = kernels.at(-1)!.replace(/^vmlinuz-/, '');
  return { kernel: join('/boot', kernels.at(-1)!), moduleRoot: join('/lib/modules', version) };
}

/** An initramfs of busybox, these modules (and their dependencies) and this init. */
export function busyboxInitramfs(init: string, moduleRoot: string, modules: readonly string[], busybox = '/bin/busybox', extra: InitramfsFile[] = []): { image: Buffer; modules: string[] } {
  if (!existsSync(busybox)) throw new Error(`${busybox} is missing: install the Debian package busybox-static`);
  const mods = modulesWithDependencies(moduleRoot, modules);
  const image = initramfs([
    { path: 'init', content: init, mode: 0o755 },
    { path: 'bin/busybox', content: readFileSync(busybox), mode: 0o755 },
    { path: 'bin/udhcpc.script', content: UDHCPC_SCRIPT, mode: 0o755 },
    { path: 'lib/modules.order', content: mods.map((m) => m.name).join('\n') + '\n' },
    ...mods.map((m) => ({ path: `lib/modules/${m.name}.ko`, content: readFileSync(m.file) })),
    ...extra,
  ]);
  return { image, modules: mods.map((m) => m.name) };
}

/** Write vmlinuz and initrd.gz of the wipe image into `outDir`. */
export function buildWipeImage(outDir: string): { kernel: string; initrd: string; modules: string[] } {
  const { kernel, moduleRoot } = hostKernel();
  const { image, modules } = busyboxInitramfs(WIPE_INIT, moduleRoot, WIPE_MODULES);
  mkdirSync(outDir, { recursive: true });
  const k = join(outDir, 'vmlinuz');
  const i = join(outDir, 'initrd.gz');
  copyFileSync(kernel, k);
  writeFileSync(i, image);
  return { kernel: k, initrd: i, modules };
}
