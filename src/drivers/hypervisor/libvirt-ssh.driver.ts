import { SshConnections, type ExecResult } from '../transport/ssh-client';
import { HypervisorError, type HypervisorDriver, type HypervisorTarget, type PoolFile, type VmConsole, type VmPowerState } from './hypervisor-driver';

const VM_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const BASE_IMAGE = /^[A-Za-z0-9._-]{1,128}$/;
/** What virsh calls a domain's state, as the driver reports it. */
const powerState = (s: string): VmPowerState => (s === 'running' || s === 'shut off' || s === 'paused' ? s : 'other');

/**
 * Files of an image in the pool ($@: path, URL, SHA-256 per file): each one missing is fetched
 * (under a lock: one fetch per file at a time) into a .part file, checked, then moved in place;
 * says `fetched <name>` for each. One command for all: each SSH command costs a session on the
 * host (~0.1 s on the lab's sshd, the same with OpenSSH's own client).
 */
const FETCH = `set -e
while [ $# -ge 3 ]; do
  f=$1; url=$2; sum=$3; shift 3
  [ -f "$f" ] && continue
  if [ -z "$url" ]; then echo "\${f##*/} is not in the storage pool, and its image names no URL to fetch it from" >&2; exit 4; fi
  (
    exec 9>"$f.lock"
    flock 9
    [ -f "$f" ] && exit 0
    rm -f "$f.part"
    curl -fsS --retry 2 --connect-timeout 20 -o "$f.part" "$url"
    if ! echo "$sum  $f.part" | sha256sum -c --status; then rm -f "$f.part"; echo "the file fetched from $url does not have the SHA-256 the image names" >&2; exit 3; fi
    mv "$f.part" "$f"
    echo "fetched \${f##*/}"
  )
done`;
/** The seed's files, read from stdin one after another ($1 the directory, then name:length pairs), made into the ISO ($2 … see writeSeed). */
const SEED = `set -e
umask 077
dir=$1; iso=$2; shift 2
rm -rf "$dir"; mkdir -p "$dir"
names=
for f in "$@"; do
  dd bs=1 count="\${f#*:}" of="$dir/\${f%%:*}" status=none
  names="$names $dir/\${f%%:*}"
done
genisoimage -quiet -output "$iso" -volid cidata -joliet -rock $names
rm -rf "$dir"`;
/** The domain XML from stdin into a file, defined, the file removed ($1 file, $2 libvirt URI). */
const DEFINE = `umask 077
cat > "$1" || exit 1
virsh -q -c "$2" define "$1"; rc=$?
rm -f "$1"
exit $rc`;

/**
 * libvirt on the hypervisor, driven with `virsh`, `qemu-img` and `genisoimage` over one kept SSH
 * connection per host (host key pinned: see SshConnections). Files go through stdin, never
 * through a command line.
 */
export class LibvirtSshDriver implements HypervisorDriver {
  readonly name = 'libvirt-over-ssh';
  private readonly pools = new Map<string, string>();
  private readonly types = new Map<string, 'kvm' | 'qemu'>();

  constructor(private readonly ssh: SshConnections) {}

  /** `what` names a script in errors (else the command's first words). */
  private async run(t: HypervisorTarget, argv: string[], opts: { stdin?: string | Buffer; ok?: (r: ExecResult) => boolean; timeoutMs?: number; what?: string } = {}): Promise<ExecResult> {
    const r = await this.ssh.exec(t.ssh, argv, { stdin: opts.stdin, timeoutMs: opts.timeoutMs ?? 120_000 });
    if (!(opts.ok ?? ((x) => x.code === 0))(r)) {
      throw new HypervisorError(`${opts.what ?? argv.slice(0, argv[0] === 'virsh' ? 4 : 2).join(' ')} on ${t.name} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
    }
    return r;
  }

  private virsh(t: HypervisorTarget, args: string[], opts: { ok?: (r: ExecResult) => boolean } = {}): Promise<ExecResult> {
    return this.run(t, ['virsh', '-q', '-c', t.libvirtUri, ...args], opts);
  }

  private check(vm: string): void {
    if (!VM_NAME.test(vm)) throw new HypervisorError(`not a VM name: ${vm}`);
  }

  async domainType(t: HypervisorTarget): Promise<'kvm' | 'qemu'> {
    const key = `${t.ssh.host}:${t.ssh.port}`;
    const known = this.types.get(key);
    if (known) return known;
    const type = (await this.run(t, ['test', '-w', '/dev/kvm'], { ok: () => true })).code === 0 ? 'kvm' : 'qemu';
    this.types.set(key, type);
    return type;
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

  async ensureFiles(t: HypervisorTarget, files: PoolFile[]): Promise<string[]> {
    for (const f of files) if (!BASE_IMAGE.test(f.file)) throw new HypervisorError(`not a pool file name: ${f.file}`);
    const pool = await this.poolPath(t);
    const args = files.flatMap((f) => [`${pool}/${f.file}`, f.url && f.sha256 ? f.url : '', f.url && f.sha256 ? f.sha256 : '']);
    const r = await this.run(t, ['sh', '-c', FETCH, 'sh', ...args], { timeoutMs: 3_600_000, what: `fetching image files into pool ${t.storagePool}` });
    return [...r.stdout.matchAll(/^fetched (\S+)$/gm)].map((m) => m[1]!);
  }

  async list(t: HypervisorTarget): Promise<Map<string, VmPowerState>> {
    // `virsh list --all`: "<id or -> <name> <state...>" per domain.
    const out = (await this.virsh(t, ['list', '--all'])).stdout;
    const vms = new Map<string, VmPowerState>();
    for (const line of out.split('\n')) {
      const m = /^\s*(\d+|-)\s+(\S+)\s+(.+?)\s*$/.exec(line);
      if (!m) continue;
      vms.set(m[2]!, powerState(m[3]!));
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
    const iso = `${pool}/${vm}-seed.iso`;
    const names = Object.keys(files).filter((n) => /^[a-z-]{1,32}$/.test(n));
    const bodies = names.map((n) => Buffer.from(files[n]!, 'utf8'));
    await this.run(t, ['sh', '-c', SEED, 'sh', `${pool}/${vm}-seed`, iso, ...names.map((n, i) => `${n}:${bodies[i]!.length}`)], { stdin: Buffer.concat(bodies), what: `writing the seed of ${vm}` });
    return iso;
  }

  async define(t: HypervisorTarget, vm: string, domainXml: string): Promise<void> {
    this.check(vm);
    await this.run(t, ['sh', '-c', DEFINE, 'sh', `${await this.poolPath(t)}/${vm}.xml`, t.libvirtUri], { stdin: domainXml, what: `virsh define ${vm}` });
  }

  async start(t: HypervisorTarget, vm: string): Promise<void> {
    this.check(vm);
    // Started already is done (a repeated task); one command, no state asked first.
    await this.virsh(t, ['start', vm], { ok: (r) => r.code === 0 || /already active/i.test(r.stderr) });
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
    return powerState(r.stdout.trim());
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

  async ipv4(t: HypervisorTarget, vm: string): Promise<string | null> {
    this.check(vm);
    for (const source of ['lease', 'arp']) {
      const r = await this.virsh(t, ['domifaddr', vm, '--source', source], { ok: () => true });
      const m = /ipv4\s+(\d{1,3}(?:\.\d{1,3}){3})\//.exec(r.stdout);
      if (m) return m[1]!;
    }
    return null;
  }

  async openConsole(t: HypervisorTarget, vm: string): Promise<VmConsole> {
    this.check(vm);
    // `virsh console` on a terminal; --force takes the console over from a session left behind.
    return this.ssh.open(t.ssh, ['virsh', '-c', t.libvirtUri, 'console', vm, '--force']);
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
