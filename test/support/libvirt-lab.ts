import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxInitramfs, hostKernel } from '../../src/modules/boot/wipe-image';
import { requirePeer, stopPeer } from './peers';

/** The test VM's init: reads the cidata seed and says what it found on the serial console, then runs a shell there. */
const VM_INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /lib/modules.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
sleep 1
mkdir -p /seed
for d in /dev/sr0 /dev/sr1; do mount -t iso9660 -o ro $d /seed 2>/dev/null && break; done
echo "racksmith-vm: seed $(cat /seed/meta-data | tr '\\n' ' ')"
echo "racksmith-vm: $(grep -c ^processor /proc/cpuinfo) cpus, disk $(cat /sys/block/vda/size) sectors"
# A shell on the serial console (the web terminal's lab test types into it).
while true; do sh </dev/ttyS0 >/dev/ttyS0 2>&1; sleep 1; done
`;

/** A small test image for direct kernel boot: the host's kernel and a busybox initramfs written to `dir`. */
export function testVmImage(dir: string): { kernel: string; initrd: string } {
  const host = hostKernel();
  const initrd = join(dir, 'vm-initrd.gz');
  writeFileSync(initrd, busyboxInitramfs(VM_INIT, host.moduleRoot, ['virtio_pci', 'virtio_blk', 'ahci', 'sr_mod', 'isofs']).image);
  return { kernel: host.kernel, initrd };
}

/**
 * A private libvirtd for a test (LAB.md): its own config and unix socket in `dir`, a transient
 * dir storage pool (nothing kept in /etc/libvirt), stopped by its pid. The machine's qemu.conf
 * must let qemu run as root without a security driver (.ci/run sets it).
 */
export interface Libvirtd {
  uri: string;
  pool: string;
  poolDir: string;
  virsh(...args: string[]): string;
  stop(): Promise<void>;
}

export async function startLibvirtd(dir: string, tag: string): Promise<Libvirtd> {
  requirePeer('/usr/sbin/libvirtd', 'libvirt-daemon-system');
  requirePeer('/usr/bin/virsh', 'libvirt-clients');
  requirePeer('/usr/bin/qemu-img', 'qemu-utils');
  requirePeer('/usr/bin/genisoimage', 'genisoimage');
  const qemuConf = existsSync('/etc/libvirt/qemu.conf') ? readFileSync('/etc/libvirt/qemu.conf', 'utf8') : '';
  if (!/^security_driver\s*=\s*"none"/m.test(qemuConf) || !/^user\s*=\s*"root"/m.test(qemuConf)) {
    throw new Error('/etc/libvirt/qemu.conf needs user = "root" and security_driver = "none" for the lab libvirtd (.ci/run sets them)');
  }
  const sock = join(dir, 'sock');
  const poolDir = join(dir, 'pool');
  mkdirSync(sock, { recursive: true });
  mkdirSync(poolDir, { recursive: true });
  writeFileSync(join(dir, 'libvirtd.conf'), `unix_sock_dir = "${sock}"\nunix_sock_rw_perms = "0700"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n`);
  let log = '';
  // virtlogd keeps the VMs' console and qemu logs (as on a real hypervisor); ours, stopped with the lab.
  mkdirSync('/run/libvirt', { recursive: true });
  const logd: ChildProcess = spawn('/usr/sbin/virtlogd', [], { stdio: ['ignore', 'pipe', 'pipe'] });
  logd.stderr!.on('data', (d: Buffer) => (log += d));
  for (let i = 0; i < 50 && !existsSync('/run/libvirt/virtlogd-sock'); i++) await new Promise((r) => setTimeout(r, 100));
  const proc: ChildProcess = spawn('/usr/sbin/libvirtd', ['-f', join(dir, 'libvirtd.conf'), '-p', join(dir, 'libvirtd.pid')], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => (log += d));
  proc.stderr!.on('data', (d: Buffer) => (log += d));
  const uri = `qemu:///system?socket=${join(sock, 'libvirt-sock')}`;
  const virsh = (...args: string[]) => execFileSync('virsh', ['-q', '-c', uri, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`libvirtd exited: ${log}`);
    if (existsSync(join(sock, 'libvirt-sock'))) {
      try {
        virsh('version');
        break;
      } catch {}
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const pool = `rs-pool-${tag}`;
  virsh('pool-create-as', pool, 'dir', '--target', poolDir);
  return {
    uri,
    pool,
    poolDir,
    virsh,
    async stop() {
      // Domains this test left (a failed run): gone with their qemu processes.
      try {
        for (const name of virsh('list', '--all', '--name').split('\n').filter((n) => n.includes(tag))) {
          try {
            virsh('destroy', name);
          } catch {}
          try {
            virsh('undefine', name);
          } catch {}
        }
        virsh('pool-destroy', pool);
      } catch {}
      await stopPeer(proc);
      await stopPeer(logd);
    },
  };
}
