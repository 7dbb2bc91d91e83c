import type { BmcDriver, BmcTarget, BootDevice, PowerState } from './bmc-driver';

interface FakeMachine {
  power: PowerState;
  boot: { device: BootDevice; once: boolean };
  calls: string[];
}

/**
 * A BMC that keeps its machines in memory: for unit tests of the logic above the driver, and
 * for install jobs until the IPMI driver lands. Never the proof that a real BMC works.
 */
export class FakeBmcDriver implements BmcDriver {
  readonly name = 'fake';
  private readonly machines = new Map<string, FakeMachine>();

  machine(serverId: string): FakeMachine {
    let m = this.machines.get(serverId);
    if (!m) {
      m = { power: 'on', boot: { device: 'disk', once: false }, calls: [] };
      this.machines.set(serverId, m);
    }
    return m;
  }

  async powerStatus(t: BmcTarget): Promise<PowerState> {
    return this.machine(t.serverId).power;
  }

  async powerOn(t: BmcTarget): Promise<void> {
    const m = this.machine(t.serverId);
    m.power = 'on';
    m.calls.push('power on');
  }

  async powerOff(t: BmcTarget): Promise<void> {
    const m = this.machine(t.serverId);
    m.power = 'off';
    m.calls.push('power off');
  }

  async setBootDevice(t: BmcTarget, device: BootDevice, opts: { once: boolean }): Promise<void> {
    const m = this.machine(t.serverId);
    m.boot = { device, once: opts.once };
    m.calls.push(`boot ${device}${opts.once ? ' once' : ''}`);
  }
}
