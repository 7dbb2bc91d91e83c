import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requirePeer, stopPeer } from './peers';
import { busyboxInitramfs, hostKernel } from '../../src/modules/boot/wipe-image';

/**
 * The network-boot lab (LAB.md): a network namespace with a bridge (the provisioning network), a
 * tap for the VM, and a veth pair so the test reaches racksmith's HTTP API inside it; a busybox
 * initramfs that plays the installer; qemu booting from the network.
 */

export function requireNetbootPeers(): { kernel: string; moduleRoot: string } {
  requirePeer('/usr/bin/qemu-system-x86_64', 'qemu-system-x86');
  requirePeer('/usr/lib/ipxe/qemu/pxe-virtio.rom', 'ipxe-qemu');
  requirePeer('/usr/share/OVMF/OVMF_CODE_4M.fd', 'ovmf');
  requirePeer('/bin/busybox', 'busybox-static');
  return hostKernel();
}

/**
 * The "installer": brings up the NIC, takes a DHCP lease, calls racksmith back with `done`, then
 * with `booted` in place of the installed system's first boot (it installs nothing), powers off.
 */
const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /lib/modules.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
sleep 1
ip link set lo up; ip link set eth0 up
udhcpc -i eth0 -s /bin/udhcpc.script -q -t 10 -n || echo "racksmith-test: no DHCP lease"
for word in $(cat /proc/cmdline); do
  case "$word" in
    racksmith.callback=*) cb="\${word#racksmith.callback=}" ;;
    racksmith.token=*) token="\${word#racksmith.token=}" ;;
  esac
done
echo "racksmith-test: calling back $cb"
timeout 20 wget -q -O - --header 'Content-Type: application/json' --post-data "{\\"token\\":\\"$token\\",\\"status\\":\\"done\\",\\"message\\":\\"test installer on $(ip -4 addr show eth0 | grep -o 'inet [0-9.]*')\\"}" "$cb" && echo "racksmith-test: callback sent"
timeout 20 wget -q -O - --header 'Content-Type: application/json' --post-data "{\\"token\\":\\"$token\\",\\"status\\":\\"booted\\",\\"message\\":\\"test installer, in place of the first boot\\"}" "$cb" && echo "racksmith-test: first boot reported"
sync
poweroff -f
`;

/** Builds the test installer's initramfs (racksmith's own initramfs writer) in dir; returns its path. */
export function buildTestInitramfs(dir: string, moduleRoot: string): string {
  const out = join(dir, 'initrd.gz');
  writeFileSync(out, busyboxInitramfs(INIT, moduleRoot, ['virtio_pci', 'virtio_net']).image);
  return out;
}

export interface Netns {
  name: string;
  /** The bridge address (racksmith's boot address) and the veth address the test reaches it on. */
  bridgeAddress: string;
  apiAddress: string;
  /** Starts a program inside the namespace (its own process, stopped by pid in destroy). */
  spawn(cmd: string, args: string[], opts?: { env?: Record<string, string>; log?: (s: string) => void }): ChildProcess;
  destroy(): Promise<void>;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

export function createNetns(tag: string): Netns {
  requirePeer('/usr/sbin/ip', 'iproute2');
  const name = `rs-${tag}-${process.pid}`;
  const n = (process.pid % 200) + 20;
  const host = `rsh${process.pid % 100000}`;
  const bridgeAddress = '10.77.0.1';
  const apiAddress = `10.78.${n}.2`;
  ip('netns', 'add', name);
  const children: ChildProcess[] = [];
  try {
    ip('-n', name, 'link', 'set', 'lo', 'up');
    ip('-n', name, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', name, 'addr', 'add', `${bridgeAddress}/24`, 'dev', 'br0');
    ip('-n', name, 'link', 'set', 'br0', 'up');
    ip('-n', name, 'tuntap', 'add', 'dev', 'tap0', 'mode', 'tap');
    ip('-n', name, 'link', 'set', 'tap0', 'master', 'br0');
    ip('-n', name, 'link', 'set', 'tap0', 'up');
    // Replies to 255.255.255.255 leave on the bridge.
    ip('-n', name, 'route', 'add', '255.255.255.255/32', 'dev', 'br0');
    // The test's way in: a veth pair, host side in this namespace, the other end in the lab's.
    ip('link', 'add', host, 'type', 'veth', 'peer', 'name', 'api0', 'netns', name);
    ip('addr', 'add', `10.78.${n}.1/30`, 'dev', host);
    ip('link', 'set', host, 'up');
    ip('-n', name, 'addr', 'add', `${apiAddress}/30`, 'dev', 'api0');
    ip('-n', name, 'link', 'set', 'api0', 'up');
  } catch (err) {
    try {
      ip('netns', 'del', name);
      ip('link', 'del', host);
    } catch {}
    throw err;
  }
  return {
    name,
    bridgeAddress,
    apiAddress,
    spawn(cmd, args, opts = {}) {
      // `ip netns exec NS cmd` execs cmd itself: the pid is the program's (LAB.md).
      const child = spawn('ip', ['netns', 'exec', name, cmd, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout!.on('data', (d: Buffer) => opts.log?.(d.toString()));
      child.stderr!.on('data', (d: Buffer) => opts.log?.(d.toString()));
      children.push(child);
      return child;
    },
    async destroy() {
      for (const c of children) await stopPeer(c);
      try {
        ip('link', 'del', host);
      } catch {}
      try {
        ip('netns', 'del', name);
      } catch {}
    },
  };
}

export interface LabRacksmith {
  api: string;
  /** An API call with the lab's bootstrap token; the JSON answer. */
  call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  log(): string;
}

const LAB_TOKEN = 'e2e-bootstrap-token-0123456789abcdef';

/**
 * `racksmith serve` inside the lab namespace: authoritative DHCP, TFTP and HTTP boot on the
 * bridge, its API on the veth for the test, PostgreSQL over its unix socket (the namespace has a
 * loopback of its own, but the same files). Ready (and the provisioning network made) on return.
 */
export async function startLabRacksmith(ns: Netns, database: string, env: Record<string, string> = {}): Promise<LabRacksmith> {
  let log = '';
  const api = `http://${ns.apiAddress}:8080`;
  ns.spawn(process.execPath, [join(__dirname, '..', '..', 'bin', 'racksmith.js'), 'serve'], {
    env: {
      DATABASE_URL: `postgres://postgres@localhost/${database}?host=/var/run/postgresql`,
      RACKSMITH_HOST: '0.0.0.0',
      RACKSMITH_PORT: '8080',
      RACKSMITH_BOOTSTRAP_TOKEN: LAB_TOKEN,
      RACKSMITH_INVENTORY_SEED: '',
      RACKSMITH_POWER_SYNC_INTERVAL: '0',
      RACKSMITH_CONSOLE_RECONCILE_INTERVAL: '0',
      RACKSMITH_BOOT_ADDRESS: ns.bridgeAddress,
      RACKSMITH_DHCP_MODE: 'authoritative',
      ...env,
    },
    log: (s) => (log += s),
  });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${api}/api/v1${path}`, { method, headers: { authorization: `Bearer ${LAB_TOKEN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null };
  };
  for (let i = 0; i < 300; i++) {
    if ((await fetch(`${api}/health`).then((r) => r.status, () => 0)) === 200) break;
    if (i === 299) throw new Error(`racksmith did not start in the lab namespace:\n${log.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await call('POST', '/sites', { code: 'lab', name: 'Lab' });
  // The Debian installer stops without a name server (LAB.md) and without a default route: the bridge's address does for both.
  const net = await call('POST', '/boot-networks', { site: 'lab', name: 'prov', cidr: '10.77.0.0/24', gateway: ns.bridgeAddress, dns: [ns.bridgeAddress], leaseSeconds: 600 });
  if (net.status !== 201) throw new Error(`provisioning network: ${JSON.stringify(net.json)}`);
  return { api, call, log: () => log };
}

/**
 * A qemu VM on the lab's tap, booting from the network first (BIOS: iPXE's ROM on the NIC; UEFI:
 * OVMF's own PXE, then iPXE). With `disk`, the disk comes next in the boot order, and with
 * `reboot` a reboot restarts the VM instead of ending qemu (an installer that reboots into the disk).
 */
export function labVm(ns: Netns, dir: string, kind: 'bios' | 'uefi', mac: string, serial: string, opts: { disk?: string; reboot?: boolean; memMb?: number } = {}): ChildProcess {
  const common = [
    ...(opts.disk ? ['-drive', `file=${opts.disk},if=none,id=d0,format=raw`, '-device', `virtio-blk-pci,drive=d0${kind === 'uefi' ? ',bootindex=2' : ''}`] : []),
    '-accel', 'tcg', '-m', String(opts.memMb ?? 512), '-nographic', ...(opts.reboot ? [] : ['-no-reboot']), '-serial', `file:${serial}`, '-monitor', 'none',
    '-netdev', 'tap,id=n0,ifname=tap0,script=no,downscript=no',
  ];
  if (kind === 'bios') {
    return ns.spawn('qemu-system-x86_64', [...common, '-machine', 'pc,graphics=off', '-vga', 'none', '-device', `virtio-net-pci,netdev=n0,mac=${mac},disable-legacy=on,romfile=/usr/lib/ipxe/qemu/pxe-virtio.rom`, '-boot', opts.disk ? 'order=nc' : 'n']);
  }
  const vars = join(dir, `vars-${mac.replace(/:/g, '')}.fd`);
  copyFileSync('/usr/share/OVMF/OVMF_VARS_4M.fd', vars);
  // The NIC's own ROM off: OVMF's PXE runs (arch 7), fetches snponly.efi over TFTP, then iPXE.
  return ns.spawn('qemu-system-x86_64', [
    ...common,
    '-machine', 'q35',
    '-drive', 'if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd',
    '-drive', `if=pflash,format=raw,file=${vars}`,
    '-device', `virtio-net-pci,netdev=n0,mac=${mac},disable-legacy=on,romfile=,bootindex=1`,
  ]);
}

/** Whether the process ended within `ms`. */
export const exited = (p: ChildProcess, ms: number) =>
  new Promise<boolean>((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    p.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
