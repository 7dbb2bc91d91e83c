import { SshConnections, type ExecResult } from '../transport/ssh-client';
import { HypervisorError, type HypervisorDriver, type HypervisorTarget, type PoolFile, type VmPowerState } from './hypervisor-driver';

const VM_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const BASE_IMAGE = /^[A-Za-z0-9._-]{1,128}$/;
/** Fetch $1 to $2 unless it is there (under a lock: one fetch per file at a time), check its SHA-256 ($3), then move it in place. */
const FETCH = `set -e
exec 9>"$2.lock"
flock 9
[ -f "$2" ] && exit 0
rm -f "$2.part"
curl -fsS --retry 2 --connect-timeout 20 -o "$2.part" "$1"
if ! echo "$3  $2.part" | sha256sum -c --status; then rm -f "$2.part"; echo "the file fetched from $1 does not have the SHA-256 the image names" >&2; exit 3; fi
mv "$2.part" "$2"`;

/**
 * libvirt on the hypervisor, driven with `virsh`, `qemu-img` and `genisoimage` over one kept SSH
 * connection per host (host key pinned: see SshConnections). Files go through stdin, never
 * through a command line.
 */
export class LibvirtSshDriver implements HypervisorDriver {
  readonly name = 'libvirt-over-ssh';
  private readonly pools = new Map<string, string>();

  constructor(private readonly ssh: SshConnections) {}

  private async run(t: HypervisorTarget, argv: string[], opts: { stdin?: string; ok?: (r: ExecResult) => boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
    const r = await this.ssh.exec(t.ssh, argv, { stdin: opts.stdin, timeoutMs: opts.timeoutMs ?? 120_000 });
    if (!(opts.ok ?? ((x) => x.code === 0))(r)) {
      throw new HypervisorError(`${argv.slice(0, argv[0] === 'virsh' ? 4 : 2).join(' ')} on ${t.name} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
    }
    return r;
  }

  private virsh(t: HypervisorTarget, args: string[], opts: { ok?: (r: ExecResult) => boolean } = {}): Promise<ExecResult> {
    return this.run(t, ['virsh', '-q', '-c', t.libvirtUri, ...args], opts);
  }

  private check(vm: string): void {
    if (!VM_NAME.test(vm)) throw new HypervisorError(`not a VM name: ${vm}`);
  }

  private async write(t: HypervisorTarget, path: string, content: string): Promise<void> {
    await this.run(t, ['sh', '-c', 'umask 077 && cat > "$1"', 'sh', path], { stdin: content });
  }

  async domainType(t: HypervisorTarget): Promise<'kvm' | 'qemu'> {
    return (await this.run(t, ['test', '-w', '/dev/kvm'], { ok: () => true })).code === 0 ? 'kvm' : 'qemu';
  }

  async poolPath(t: HypervisorTarget): Promise<string> {
    const key = `${t.ssh.host}:${t.ssh.port}/${t.storagePool}`;
    const known = this.pools.get(key);
    if (known) return known;
    const xml = (await this.virsh(t, ['pool-dumpxml', t.storagePool])).stdout;
    const path = /<path>([^<]+)<\/path>/.exec(xml)?.[1];
    if (!path) throw new HypervisorError(`storage pool ${t.storagePool} on ${t.name} has no directory (racksmith needs a dir pool)`);
    this.pools.set(key, path);
    return path;
  }

  async ensureFile(t: HypervisorTarget, f: PoolFile): Promise<'present' | 'fetched'> {
    if (!BASE_IMAGE.test(f.file)) throw new HypervisorError(`not a pool file name: ${f.file}`);
    const path = `${await this.poolPath(t)}/${f.file}`;
    if ((await this.run(t, ['test', '-f', path], { ok: () => true })).code === 0) return 'present';
    if (!f.url || !f.sha256) throw new HypervisorError(`${f.file} is not in storage pool ${t.storagePool} on ${t.name}, and its image names no URL to fetch it from`);
    const r = await this.run(t, ['sh', '-c', FETCH, 'sh', f.url, path, f.sha256], { timeoutMs: 3_600_000, ok: () => true });
    if (r.code !== 0) throw new HypervisorError(`fetching ${f.file} onto ${t.name} failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    return 'fetched';
  }

  async list(t: HypervisorTarget): Promise<Map<string, VmPowerState>> {
    // `virsh list --all`: "<id or -> <name> <state...>" per domain.
    const out = (await this.virsh(t, ['list', '--all'])).stdout;
    const vms = new Map<string, VmPowerState>();
    for (const line of out.split('\n')) {
      const m = /^\s*(\d+|-)\s+(\S+)\s+(.+?)\s*$/.exec(line);
      if (!m) continue;
      const s = m[3]!;
      vms.set(m[2]!, s === 'running' || s === 'shut off' || s === 'paused' ? s : 'other');
    }
    return vms;
  }

  async createDisk(t: HypervisorTarget, vm: string, baseImage: string, sizeGb: number): Promise<string> {
    this.check(vm);
    if (!BASE_IMAGE.test(baseImage)) throw new HypervisorError(`not a base image name: ${baseImage}`);
    const pool = await this.poolPath(t);
    const disk = `${pool}/${vm}.qcow2`;
    await this.run(t, ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', `${pool}/${baseImage}`, disk, `${sizeGb}G`]);
    return disk;
  }

  async writeSeed(t: HypervisorTarget, vm: string, files: Record<string, string>): Promise<string> {
    this.check(vm);
    const pool = await this.poolPath(t);
    const dir = `${pool}/${vm}-seed`;
    const iso = `${pool}/${vm}-seed.iso`;
    await this.run(t, ['mkdir', '-p', '-m', '0700', dir]);
    const names = Object.keys(files).filter((n) => /^[a-z-]{1,32}$/.test(n));
    for (const n of names) await this.write(t, `${dir}/${n}`, files[n]!);
    await this.run(t, ['genisoimage', '-quiet', '-output', iso, '-volid', 'cidata', '-joliet', '-rock', ...names.map((n) => `${dir}/${n}`)]);
    await this.run(t, ['rm', '-rf', dir]);
    return iso;
  }

  async define(t: HypervisorTarget, vm: string, domainXml: string): Promise<void> {
    this.check(vm);
    const file = `${await this.poolPath(t)}/${vm}.xml`;
    await this.write(t, file, domainXml);
    try {
      await this.virsh(t, ['define', file]);
    } finally {
      await this.run(t, ['rm', '-f', file]);
    }
  }

  async start(t: HypervisorTarget, vm: string): Promise<void> {
    this.check(vm);
    if ((await this.state(t, vm)) === 'running') return;
    await this.virsh(t, ['start', vm]);
  }

  async stop(t: HypervisorTarget, vm: string, force: boolean): Promise<void> {
    this.check(vm);
    const state = await this.state(t, vm);
    if (state !== 'running' && state !== 'paused') return;
    await this.virsh(t, [force ? 'destroy' : 'shutdown', vm]);
  }

  async reboot(t: HypervisorTarget, vm: string): Promise<void> {
    this.check(vm);
    await this.virsh(t, ['reboot', vm]);
  }

  async suspend(t: HypervisorTarget, vm: string): Promise<void> {
    this.check(vm);
    if ((await this.state(t, vm)) !== 'paused') await this.virsh(t, ['suspend', vm]);
  }

  async resume(t: HypervisorTarget, vm: string): Promise<void> {
    this.check(vm);
    if ((await this.state(t, vm)) === 'paused') await this.virsh(t, ['resume', vm]);
  }

  async state(t: HypervisorTarget, vm: string): Promise<VmPowerState> {
    this.check(vm);
    const r = await this.virsh(t, ['domstate', vm], { ok: () => true });
    if (r.code !== 0) {
      if (/failed to get domain|Domain not found/i.test(r.stderr)) return 'absent';
      throw new HypervisorError(`virsh domstate ${vm} on ${t.name} failed: ${r.stderr.trim()}`);
    }
    const s = r.stdout.trim();
    return s === 'running' || s === 'shut off' || s === 'paused' ? s : 'other';
  }

  async resize(t: HypervisorTarget, vm: string, size: { vcpus: number; ramMb: number; diskGb: number }): Promise<void> {
    this.check(vm);
    if ((await this.state(t, vm)) !== 'shut off') throw new HypervisorError(`${vm} on ${t.name} must be shut off to be resized`);
    const kib = String(size.ramMb * 1024);
    await this.virsh(t, ['setvcpus', vm, String(size.vcpus), '--config', '--maximum']);
    await this.virsh(t, ['setvcpus', vm, String(size.vcpus), '--config']);
    await this.virsh(t, ['setmaxmem', vm, kib, '--config']);
    await this.virsh(t, ['setmem', vm, kib, '--config']);
    const disk = `${await this.poolPath(t)}/${vm}.qcow2`;
    const info = JSON.parse((await this.run(t, ['qemu-img', 'info', '-U', '--output=json', disk])).stdout) as { 'virtual-size': number };
    if (info['virtual-size'] < size.diskGb * 1024 ** 3) await this.run(t, ['qemu-img', 'resize', '-q', disk, `${size.diskGb}G`]);
  }

  close(): Promise<void> {
    return this.ssh.close();
  }

  async remove(t: HypervisorTarget, vm: string): Promise<void> {
    this.check(vm);
    const state = await this.state(t, vm);
    if (state === 'running' || state === 'paused') await this.virsh(t, ['destroy', vm]);
    if (state !== 'absent') await this.virsh(t, ['undefine', vm]);
    const pool = await this.poolPath(t);
    await this.run(t, ['rm', '-rf', `${pool}/${vm}.qcow2`, `${pool}/${vm}-seed.iso`, `${pool}/${vm}-seed`, `${pool}/${vm}.xml`]);
  }
}
