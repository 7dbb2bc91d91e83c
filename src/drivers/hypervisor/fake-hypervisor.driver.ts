import { Duplex } from 'node:stream';
import { HypervisorError, type HypervisorDriver, type HypervisorTarget, type PoolFile, type VmConsole, type VmPowerState } from './hypervisor-driver';

interface FakeHost {
  files: Map<string, string>;
  domains: Map<string, { xml: string; state: VmPowerState; ipv4?: string }>;
  unreachable: boolean;
  /** Calls (such as `start web-1`) that wait until their promise resolves: a slow host, for tests of what happens meanwhile. */
  holds: Map<string, Promise<void>>;
  calls: string[];
}

/** Hypervisors in memory, for the logic above the driver (never the proof libvirt works). */
export class FakeHypervisorDriver implements HypervisorDriver {
  readonly name = 'fake';
  private readonly hosts = new Map<string, FakeHost>();

  host(name: string): FakeHost {
    let h = this.hosts.get(name);
    if (!h) this.hosts.set(name, (h = { files: new Map(), domains: new Map(), unreachable: false, holds: new Map(), calls: [] }));
    return h;
  }

  private async on(t: HypervisorTarget, call: string): Promise<FakeHost> {
    const h = this.host(t.name);
    const hold = h.holds.get(call);
    if (hold) await hold;
    if (h.unreachable) throw new HypervisorError(`cannot reach ${t.ssh.host}:${t.ssh.port} over SSH: connect ECONNREFUSED (fake)`);
    h.calls.push(call);
    return h;
  }

  private domain(t: HypervisorTarget, vm: string) {
    const d = this.host(t.name).domains.get(vm);
    if (!d) throw new HypervisorError(`domain ${vm} does not exist on ${t.name}`);
    return d;
  }

  async domainType(): Promise<'kvm' | 'qemu'> {
    return 'kvm';
  }

  async poolPath(t: HypervisorTarget): Promise<string> {
    await this.on(t, 'pool');
    return `/pool/${t.storagePool}`;
  }

  async ensureFiles(t: HypervisorTarget, files: PoolFile[]): Promise<string[]> {
    const h = await this.on(t, `ensure ${files.map((f) => f.file).join(' ')}`);
    const fetched: string[] = [];
    for (const f of files) {
      const path = `/pool/${t.storagePool}/${f.file}`;
      if (h.files.has(path)) continue;
      if (!f.url) throw new HypervisorError(`${f.file} is not in the storage pool, and its image names no URL to fetch it from`);
      h.files.set(path, `fetched from ${f.url}`);
      fetched.push(f.file);
    }
    return fetched;
  }

  async list(t: HypervisorTarget): Promise<Map<string, VmPowerState>> {
    return new Map([...(await this.on(t, 'list')).domains].map(([name, d]) => [name, d.state]));
  }

  async createDisk(t: HypervisorTarget, vm: string, baseImage: string, sizeGb: number): Promise<string> {
    const path = `/pool/${t.storagePool}/${vm}.qcow2`;
    (await this.on(t, `disk ${vm}`)).files.set(path, `overlay of ${baseImage}, ${sizeGb}G`);
    return path;
  }

  async writeSeed(t: HypervisorTarget, vm: string, files: Record<string, string>): Promise<string> {
    const path = `/pool/${t.storagePool}/${vm}-seed.iso`;
    (await this.on(t, `seed ${vm}`)).files.set(path, JSON.stringify(files));
    return path;
  }

  async define(t: HypervisorTarget, vm: string, domainXml: string): Promise<void> {
    const h = await this.on(t, `define ${vm}`);
    h.domains.set(vm, { xml: domainXml, state: h.domains.get(vm)?.state ?? 'shut off' });
  }

  async start(t: HypervisorTarget, vm: string): Promise<void> {
    await this.on(t, `start ${vm}`);
    this.domain(t, vm).state = 'running';
  }

  async stop(t: HypervisorTarget, vm: string): Promise<void> {
    await this.on(t, `stop ${vm}`);
    this.domain(t, vm).state = 'shut off';
  }

  async reboot(t: HypervisorTarget, vm: string): Promise<void> {
    await this.on(t, `reboot ${vm}`);
    this.domain(t, vm);
  }

  async suspend(t: HypervisorTarget, vm: string): Promise<void> {
    await this.on(t, `suspend ${vm}`);
    this.domain(t, vm).state = 'paused';
  }

  async resume(t: HypervisorTarget, vm: string): Promise<void> {
    await this.on(t, `resume ${vm}`);
    this.domain(t, vm).state = 'running';
  }

  async state(t: HypervisorTarget, vm: string): Promise<VmPowerState> {
    return (await this.on(t, `state ${vm}`)).domains.get(vm)?.state ?? 'absent';
  }

  async resize(t: HypervisorTarget, vm: string): Promise<void> {
    await this.on(t, `resize ${vm}`);
    if (this.domain(t, vm).state !== 'shut off') throw new HypervisorError(`${vm} must be shut off to be resized`);
  }

  async ipv4(t: HypervisorTarget, vm: string): Promise<string | null> {
    return (await this.on(t, `ipv4 ${vm}`)).domains.get(vm)?.ipv4 ?? null;
  }

  /** A console that echoes what is typed, like a terminal with echo on. */
  async openConsole(t: HypervisorTarget, vm: string): Promise<VmConsole> {
    await this.on(t, `console ${vm}`);
    this.domain(t, vm);
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        this.push(chunk);
        done();
      },
    });
    stream.push(`${vm} login: `);
    return { stream, close: async () => void stream.push(null) };
  }

  async remove(t: HypervisorTarget, vm: string): Promise<void> {
    const h = await this.on(t, `remove ${vm}`);
    h.domains.delete(vm);
    for (const path of [...h.files.keys()]) if (path.includes(`/${vm}.`) || path.includes(`/${vm}-seed`)) h.files.delete(path);
  }
}
