import { PassThrough, Duplex } from 'node:stream';
import { BmcError, PRIVILEGES, type BmcDriver, type BmcTarget, type BmcUser, type BootDevice, type NewBmcUser, type PowerAction, type PowerState, type Privilege, type SessionsEnded, type SolSession } from './bmc-driver';

interface FakeUser extends BmcUser {
  password: string;
  sessions: number;
}

export interface FakeMachine {
  power: PowerState;
  boot: { device: BootDevice; once: boolean; uefi: boolean };
  calls: string[];
  users: FakeUser[];
  /** Grants an ADMINISTRATOR session to any valid user, as ipmi_sim does. */
  privilegeUnsafe: boolean;
  unreachable: boolean;
  /** What the machine's serial port printed; what was typed into the console. */
  serialOut: PassThrough;
  typed: string;
}

/**
 * A BMC that keeps its machines in memory: for unit tests of the logic above the driver.
 * Never the proof that a real BMC works (see the ipmitool tests against ipmi_sim).
 */
export class FakeBmcDriver implements BmcDriver {
  readonly name = 'fake';
  private readonly machines = new Map<string, FakeMachine>();

  constructor(private readonly slots = 16) {}

  machine(serverId: string): FakeMachine {
    let m = this.machines.get(serverId);
    if (!m) {
      const users: FakeUser[] = Array.from({ length: this.slots }, (_, i) => ({ slot: i + 1, name: '', enabled: false, privilege: null, password: '', sessions: 0 }));
      users[1] = { slot: 2, name: 'admin', enabled: true, privilege: 'administrator', password: 'secret', sessions: 0 };
      m = { power: 'on', boot: { device: 'disk', once: false, uefi: false }, calls: [], users, privilegeUnsafe: false, unreachable: false, serialOut: new PassThrough(), typed: '' };
      this.machines.set(serverId, m);
    }
    return m;
  }

  private reach(t: BmcTarget): FakeMachine {
    const m = this.machine(t.serverId);
    if (m.unreachable) throw new BmcError(`BMC ${t.address} did not answer`, 'unreachable');
    return m;
  }

  private user(m: FakeMachine, t: BmcTarget, slot: number): FakeUser {
    const u = m.users[slot - 1];
    if (!u) throw new BmcError(`BMC ${t.address}: user slot ${slot} is out of range 1..${this.slots}`, 'refused');
    return u;
  }

  async powerStatus(t: BmcTarget): Promise<PowerState> {
    return this.reach(t).power;
  }

  async power(t: BmcTarget, action: PowerAction): Promise<void> {
    const m = this.reach(t);
    if (action === 'on' && m.power === 'on') return;
    if ((action === 'off' || action === 'soft-off') && m.power === 'off') return;
    m.power = action === 'off' || action === 'soft-off' ? 'off' : 'on';
    m.calls.push(`power ${action}`);
  }

  async setBootDevice(t: BmcTarget, device: BootDevice, opts: { once: boolean; uefi?: boolean }): Promise<void> {
    const m = this.reach(t);
    m.boot = { device, once: opts.once, uefi: opts.uefi ?? false };
    m.calls.push(`boot ${device}${opts.once ? ' once' : ''}`);
  }

  async listUsers(t: BmcTarget): Promise<BmcUser[]> {
    return this.reach(t).users.map(({ slot, name, enabled, privilege }) => ({ slot, name, enabled, privilege }));
  }

  async createUser(t: BmcTarget, user: NewBmcUser): Promise<void> {
    const m = this.reach(t);
    Object.assign(this.user(m, t, user.slot), { name: user.name, password: user.password, privilege: user.privilege, enabled: true });
    m.calls.push(`user create ${user.slot} ${user.name} ${user.privilege}`);
  }

  async setUserPassword(t: BmcTarget, slot: number, password: string): Promise<void> {
    this.user(this.reach(t), t, slot).password = password;
  }

  async setUserEnabled(t: BmcTarget, slot: number, enabled: boolean): Promise<void> {
    const m = this.reach(t);
    this.user(m, t, slot).enabled = enabled;
    m.calls.push(`user ${enabled ? 'enable' : 'disable'} ${slot}`);
  }

  async deleteUser(t: BmcTarget, slot: number): Promise<void> {
    const m = this.reach(t);
    Object.assign(this.user(m, t, slot), { name: '', password: '', enabled: false, privilege: null });
    m.calls.push(`user delete ${slot}`);
  }

  async endUserSessions(t: BmcTarget, slot: number): Promise<SessionsEnded> {
    const u = this.user(this.reach(t), t, slot);
    const closed = u.sessions;
    u.sessions = 0;
    return { closed, payloadsDeactivated: 0, remaining: [], refused: [] };
  }

  async canLogin(t: BmcTarget, username: string, password: string, privilege: Privilege): Promise<boolean> {
    const m = this.reach(t);
    const u = m.users.find((x) => x.name === username && x.name !== '');
    if (!u || !u.enabled || u.password !== password || !u.privilege) return false;
    if (!m.privilegeUnsafe && PRIVILEGES.indexOf(privilege) > PRIVILEGES.indexOf(u.privilege)) return false;
    u.sessions++;
    return true;
  }

  async openSol(t: BmcTarget): Promise<SolSession> {
    const m = this.reach(t);
    const input = new PassThrough();
    input.on('data', (d: Buffer) => (m.typed += d.toString('utf8')));
    const output = new PassThrough();
    m.serialOut.pipe(output);
    const stream = Duplex.from({ readable: output, writable: input });
    return {
      stream,
      close: async () => {
        m.serialOut.unpipe(output);
        output.end();
        stream.destroy();
      },
    };
  }
}
