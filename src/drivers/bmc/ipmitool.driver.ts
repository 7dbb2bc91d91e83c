import { Duplex } from 'node:stream';
import { ProcessRunner, type RunResult } from '../transport/process-runner';
import { BmcError, type BmcDriver, type BmcTarget, type BmcUser, type BootDevice, type NewBmcUser, type PowerAction, type PowerState, type Privilege, type SessionsEnded, type SolSession } from './bmc-driver';
import { randomBytes } from 'node:crypto';
import type { IpmipowerStatusReader } from './ipmipower';

export interface IpmitoolOptions {
  /** The ipmitool program. */
  program: string;
  /** RMCP+ cipher suite (`-C`); 3 = HMAC-SHA1 + AES-CBC-128, what every BMC of the last decade speaks. */
  cipherSuite: number;
  /** Seconds per attempt (`-N`) and attempts (`-R`): an unreachable BMC costs about N × R × 2 s. */
  timeoutSeconds: number;
  retries: number;
  /** The LAN channel whose user access is set. */
  channel: number;
}

export const IPMITOOL_DEFAULTS: IpmitoolOptions = { program: 'ipmitool', cipherSuite: 3, timeoutSeconds: 1, retries: 1, channel: 1 };

const LEVEL: Record<Privilege, string> = { callback: 'CALLBACK', user: 'USER', operator: 'OPERATOR', administrator: 'ADMINISTRATOR' };
/** IPMI privilege numbers for `user priv` and `channel setaccess`. */
const LEVEL_NUMBER: Record<Privilege, number> = { callback: 1, user: 2, operator: 3, administrator: 4 };
const NO_ACCESS = 15;
/** The SOL escape character: Ctrl-], which a customer's shell session hardly ever types after a newline. */
const SOL_ESCAPE = '\x1d';

/** Lines ipmitool writes to stderr that say nothing about the outcome. */
const NOISE = [/^Get HPM\.x Capabilities request failed/, /^tcgetattr/, /^Loading IANA PEN Registry/, /^Running Get VSO Capabilities/, /^Invalid completion code received/, /^Discovered IPMB address/, /^Get Session Info command failed/];
const AUTH_FAILURE = /RAKP 2 HMAC is invalid|RAKP 2 message indicates an error|RAKP \d .*(unauthorized|invalid|insufficient)|Invalid user name|unauthorized name|Activate Session error/i;
const UNREACHABLE = /Get Auth Capabilities error|Error issuing Get Channel Authentication Capabilities|No response from remote controller|Insufficient resources for session|Unable to establish IPMI v2 \/ RMCP\+ session/i;

/** IPMI payload type of serial-over-LAN. */
const SOL_PAYLOAD = 0x01;
const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;
/** A 32-bit value as IPMI sends it, least significant byte first; and back. */
const le32 = (v: number) => [0, 8, 16, 24].map((shift) => (v >>> shift) & 0xff);
const fromLe32 = (b: number[]) => (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
/** The bytes of an `ipmitool raw` answer ("01 3f 02 0a ..." over one or more lines). */
const rawBytes = (out: string) => (out.match(/\b[0-9a-f]{2}\b/gi) ?? []).map((b) => parseInt(b, 16));
/** ipmitool's refusal ("… rsp=0x87): Invalid data field in request") as "completion code 0x87 (Invalid data field in request)". */
function refusal(message: string): string {
  const m = /rsp=(0x[0-9a-f]+)\)?:?\s*(.*)$/i.exec(message);
  return m ? `completion code ${m[1]}${m[2] && !/^Unknown \(/.test(m[2]) ? ` (${m[2].trim()})` : ''}` : message.replace(/^BMC \S+: /, '');
}

/**
 * IPMI stores 16- or 20-byte passwords; a 16-byte one works on every BMC (ipmi_sim 2.0.33
 * silently fails logins with a 20-byte one), so 20 is asked for only when needed.
 */
const passwordSize = (password: string) => (Buffer.byteLength(password) > 16 ? '20' : '16');

/** "host", "host:port" or "[v6]:port" → ipmitool's -H and -p. */
export function splitAddress(address: string): { host: string; port?: string } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(address);
  if (v6) return { host: v6[1]!, port: v6[2] };
  const m = /^([^:]+):(\d+)$/.exec(address);
  return m ? { host: m[1]!, port: m[2] } : { host: address };
}

/**
 * The IPMI-over-LAN driver: one `ipmitool -I lanplus` run per call, through the process runner.
 * The password reaches ipmitool in its environment (`-E`), never on the command line; every
 * call names the least privilege it needs (`-L`), because ipmitool otherwise asks for
 * ADMINISTRATOR. ipmitool can exit 0 after a failure, so stderr is read too.
 */
export class IpmitoolBmcDriver implements BmcDriver {
  readonly name = 'ipmitool';

  /** Present when a bulk reader (FreeIPMI's ipmipower) is given; without it each BMC costs an ipmitool run. */
  readonly powerStatusMany?: (targets: BmcTarget[]) => Promise<Map<string, PowerState | BmcError>>;

  constructor(
    private readonly opts: IpmitoolOptions = IPMITOOL_DEFAULTS,
    private readonly runner = new ProcessRunner(),
    bulk?: IpmipowerStatusReader,
  ) {
    if (bulk) this.powerStatusMany = (targets) => bulk.read(targets);
  }

  private args(t: BmcTarget, username: string, privilege: Privilege): string[] {
    const { host, port } = splitAddress(t.address);
    return [
      '-v', // the reason of a failed session (bad password or no answer) is printed only then
      '-I', 'lanplus', '-C', String(this.opts.cipherSuite),
      '-H', host, ...(port ? ['-p', port] : []),
      '-U', username, '-E', '-L', LEVEL[privilege],
      '-N', String(this.opts.timeoutSeconds), '-R', String(this.opts.retries),
    ];
  }

  private deadlineMs(): number {
    // ipmitool's own retries plus the session set-up, with room to spare; never minutes.
    return (this.opts.timeoutSeconds * (this.opts.retries + 1) * 2 + 5) * 1000;
  }

  /** Runs one ipmitool command as `username`; returns stdout or throws a BmcError. */
  private async exec(t: BmcTarget, privilege: Privilege, command: string[], as?: { username: string; password: string }): Promise<string> {
    const username = as?.username ?? t.username;
    const password = as?.password ?? t.password;
    if (!t.address) throw new BmcError(`server ${t.serverId} has no BMC address`, 'unsupported');
    if (!username) throw new BmcError(`BMC ${t.address} has no username in the inventory`, 'auth');
    let result: RunResult;
    try {
      result = await this.runner.run(this.opts.program, [...this.args(t, username, privilege), ...command], {
        env: { IPMI_PASSWORD: password ?? '' },
        timeoutMs: this.deadlineMs(),
        maxOutput: 256 * 1024,
      });
    } catch (err) {
      throw new BmcError(`could not run ${this.opts.program}: ${(err as Error).message}`, 'unsupported');
    }
    const problems = result.stderr
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !NOISE.some((n) => n.test(l)) && !l.startsWith('>'));
    const rakp = result.stderr.split('\n').find((l) => AUTH_FAILURE.test(l));
    if (rakp) throw new BmcError(`BMC ${t.address} refused ${username} at ${LEVEL[privilege]}: ${rakp.replace(/^>\s*/, '').trim()}`, 'auth');
    if (result.timedOut) throw new BmcError(`BMC ${t.address} did not answer within ${Math.round(this.deadlineMs() / 1000)} s`, 'unreachable');
    const failure = problems.find((l) => /fail|error|unable|invalid|insufficient|not supported|out of range/i.test(l));
    if (failure && UNREACHABLE.test(result.stderr) && !result.stdout.trim()) throw new BmcError(`BMC ${t.address} unreachable: ${failure}`, 'unreachable');
    if (result.code !== 0 || failure) {
      throw new BmcError(`BMC ${t.address}: ${command.join(' ')} failed: ${failure ?? problems.slice(-1)[0] ?? `ipmitool exited with ${result.code}`}`, 'refused');
    }
    return result.stdout;
  }

  async powerStatus(t: BmcTarget): Promise<PowerState> {
    const out = await this.exec(t, 'user', ['power', 'status']);
    const m = /Chassis Power is (on|off)/.exec(out);
    if (!m) throw new BmcError(`BMC ${t.address}: unexpected power status answer: ${out.trim().slice(0, 200)}`, 'protocol');
    return m[1] as PowerState;
  }

  async power(t: BmcTarget, action: PowerAction): Promise<void> {
    const state = await this.powerStatus(t);
    if (state === 'off') {
      if (action === 'off' || action === 'soft-off') return;
      // A cycle or reset of a stopped machine is a power on (IPMI refuses both on an off chassis).
      await this.exec(t, 'operator', ['power', 'on']);
      return;
    }
    const command = { on: null, off: 'off', 'soft-off': 'soft', cycle: 'cycle', reset: 'reset' }[action];
    if (command) await this.exec(t, 'operator', ['power', command]);
  }

  async setBootDevice(t: BmcTarget, device: BootDevice, opts: { once: boolean; uefi?: boolean }): Promise<void> {
    const options = [...(opts.once ? [] : ['persistent']), ...(opts.uefi ? ['efiboot'] : [])];
    await this.exec(t, 'operator', ['chassis', 'bootdev', device, ...(options.length ? [`options=${options.join(',')}`] : [])]);
  }

  async listUsers(t: BmcTarget): Promise<BmcUser[]> {
    const out = await this.exec(t, 'administrator', ['user', 'list', String(this.opts.channel)]);
    const users: BmcUser[] = [];
    for (const line of out.split('\n')) {
      const m = /^(\d+)\s+(.*?)\s+(true|false)\s+(true|false)\s+(true|false)\s+(.+?)\s*$/.exec(line);
      if (!m) continue;
      const limit = m[6]!.toUpperCase();
      const privilege = (Object.keys(LEVEL) as Privilege[]).find((p) => LEVEL[p] === limit) ?? null;
      // "IPMI Msg" is whether the user may use IPMI over this channel: what `user enable` turns on.
      users.push({ slot: Number(m[1]), name: m[2]!.trim(), enabled: m[5] === 'true' && privilege !== null, privilege });
    }
    if (!users.length) throw new BmcError(`BMC ${t.address}: could not read its user list`, 'protocol');
    return users;
  }

  async createUser(t: BmcTarget, user: NewBmcUser): Promise<void> {
    if (user.password.length > 20) throw new BmcError('IPMI passwords are at most 20 characters', 'unsupported');
    const slot = String(user.slot);
    const level = String(LEVEL_NUMBER[user.privilege]);
    await this.exec(t, 'administrator', ['user', 'set', 'name', slot, user.name]);
    await this.exec(t, 'administrator', ['user', 'set', 'password', slot, user.password, passwordSize(user.password)]);
    await this.exec(t, 'administrator', ['channel', 'setaccess', String(this.opts.channel), slot, 'callin=on', 'ipmi=on', 'link=off', `privilege=${level}`]);
    await this.exec(t, 'administrator', ['user', 'priv', slot, level, String(this.opts.channel)]);
    await this.exec(t, 'administrator', ['user', 'enable', slot]);
  }

  async setUserPassword(t: BmcTarget, slot: number, password: string): Promise<void> {
    await this.exec(t, 'administrator', ['user', 'set', 'password', String(slot), password, passwordSize(password)]);
  }

  async setUserEnabled(t: BmcTarget, slot: number, enabled: boolean): Promise<void> {
    await this.exec(t, 'administrator', ['user', enabled ? 'enable' : 'disable', String(slot)]);
  }

  async deleteUser(t: BmcTarget, slot: number): Promise<void> {
    // IPMI has no "delete": a slot is free again when it is disabled, has no access and no name.
    const s = String(slot);
    await this.exec(t, 'administrator', ['user', 'disable', s]);
    await this.exec(t, 'administrator', ['user', 'set', 'password', s, randomBytes(12).toString('base64'), '16']);
    await this.exec(t, 'administrator', ['user', 'priv', s, String(NO_ACCESS), String(this.opts.channel)]);
    await this.exec(t, 'administrator', ['user', 'set', 'name', s, '']);
  }

  /** Handles of the sessions the user in `slot` has open, from `session info all`. */
  private async sessionsOf(t: BmcTarget, slot: number): Promise<number[]> {
    const all = await this.exec(t, 'administrator', ['session', 'info', 'all']);
    const handles: number[] = [];
    for (const block of all.split(/\n\s*\n/)) {
      const handle = Number(/session handle\s*:\s*(\d+)/.exec(block)?.[1] ?? 0);
      const user = Number(/user id\s*:\s*(\d+)/.exec(block)?.[1] ?? -1);
      if (handle && user === slot) handles.push(handle);
    }
    return handles;
  }

  /** One IPMI request (NetFn App) as administrator: its response bytes, or why the BMC refused it. */
  private async app(t: BmcTarget, ...bytes: number[]): Promise<number[] | string> {
    try {
      return rawBytes(await this.exec(t, 'administrator', ['raw', '0x06', ...bytes.map(hex)]));
    } catch (err) {
      if (err instanceof BmcError && err.kind === 'refused') return refusal(err.message);
      throw err;
    }
  }

  /**
   * Active SOL payload instances, each with the session that holds it (Get Payload Activation
   * Status 0x4A, Get Payload Instance Info 0x4B) and that session's user (Get Session Info by
   * id, 0x3D). A BMC without these commands says so in `refused`; its sessions are still listed.
   */
  private async solHolders(t: BmcTarget, refused: string[]): Promise<{ instance: number; sessionId: number; userId: number }[]> {
    const status = await this.app(t, 0x4a, SOL_PAYLOAD);
    if (typeof status === 'string') {
      refused.push(`Get Payload Activation Status: ${status}`);
      return [];
    }
    const active = (status[1] ?? 0) | ((status[2] ?? 0) << 8);
    const out: { instance: number; sessionId: number; userId: number }[] = [];
    for (let instance = 1; instance <= 16; instance++) {
      if (!(active & (1 << (instance - 1)))) continue;
      const info = await this.app(t, 0x4b, SOL_PAYLOAD, instance);
      if (typeof info === 'string' || info.length < 4) {
        refused.push(`Get Payload Instance Info ${instance}: ${typeof info === 'string' ? info : 'short answer'}`);
        continue;
      }
      const sessionId = fromLe32(info);
      const session = await this.app(t, 0x3d, 0xff, ...le32(sessionId));
      if (typeof session === 'string' || session.length < 4) {
        refused.push(`Get Session Info of session 0x${sessionId.toString(16)}: ${typeof session === 'string' ? session : 'not active'}`);
        continue;
      }
      out.push({ instance, sessionId, userId: session[3]! & 0x3f });
    }
    return out;
  }

  /**
   * Close Session by id for every SOL payload the user holds (ipmi_sim and many BMCs close only
   * by id: by handle they answer 0x87), Deactivate Payload where that is refused, then Close
   * Session by handle for the user's other sessions; then both lists again.
   */
  async endUserSessions(t: BmcTarget, slot: number): Promise<SessionsEnded> {
    const refused: string[] = [];
    let closed = 0;
    let payloadsDeactivated = 0;
    for (const p of (await this.solHolders(t, refused)).filter((x) => x.userId === slot)) {
      const byId = await this.app(t, 0x3c, ...le32(p.sessionId));
      if (typeof byId !== 'string') {
        closed++;
        continue;
      }
      refused.push(`Close Session 0x${p.sessionId.toString(16)}: ${byId}`);
      const off = await this.app(t, 0x49, SOL_PAYLOAD, p.instance, 0, 0, 0, 0);
      if (typeof off === 'string') refused.push(`Deactivate Payload SOL ${p.instance}: ${off}`);
      else payloadsDeactivated++;
    }
    for (const handle of await this.sessionsOf(t, slot)) {
      const byHandle = await this.app(t, 0x3c, 0, 0, 0, 0, handle);
      if (typeof byHandle === 'string') refused.push(`Close Session handle ${handle}: ${byHandle}`);
      else closed++;
    }
    const remaining = [
      ...(await this.sessionsOf(t, slot)).map((h) => `session handle ${h}`),
      ...(await this.solHolders(t, [])).filter((x) => x.userId === slot).map((x) => `SOL payload ${x.instance} (session 0x${x.sessionId.toString(16)})`),
    ];
    return { closed, payloadsDeactivated, remaining, refused };
  }

  async canLogin(t: BmcTarget, username: string, password: string, privilege: Privilege): Promise<boolean> {
    try {
      await this.exec(t, privilege, ['session', 'info', 'active'], { username, password });
      return true;
    } catch (err) {
      if (err instanceof BmcError && (err.kind === 'auth' || err.kind === 'refused')) return false;
      throw err;
    }
  }

  async openSol(t: BmcTarget): Promise<SolSession> {
    if (!t.username) throw new BmcError(`BMC ${t.address} has no username in the inventory`, 'auth');
    // A session left active by a crashed relay blocks a new one; deactivating a free payload is harmless.
    await this.exec(t, 'administrator', ['sol', 'deactivate']).catch(() => undefined);
    const args = this.args(t, t.username, 'administrator').filter((a) => a !== '-v');
    // ipmitool's stdout to a pipe is block-buffered: its "operational" line would wait for the
    // first console bytes. stdbuf (coreutils) makes it unbuffered, so the session's start is seen.
    const proc = this.runner.open('stdbuf', ['-o0', this.opts.program, ...args, '-e', SOL_ESCAPE, 'sol', 'activate'], { env: { IPMI_PASSWORD: t.password ?? '' } });
    // The console as one byte stream: reads are what the machine printed, writes go to it.
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        if ((proc.stdin as NodeJS.WritableStream & { writable: boolean }).writable) proc.stdin.write(chunk);
        cb();
      },
    });
    let banner = true;
    let pending = '';
    let operational!: () => void;
    const ready = new Promise<void>((r) => (operational = r));
    proc.stdout.on('data', (chunk: Buffer) => {
      if (!banner) return void stream.push(chunk);
      // ipmitool's own "[SOL Session operational. Use ~? for help]" line says the payload is live; it is dropped.
      pending += chunk.toString('latin1');
      const end = pending.indexOf('\n');
      if (end < 0 && pending.length < 256) return;
      banner = false;
      operational();
      const rest = /^\[SOL Session operational/.test(pending) && end >= 0 ? pending.slice(end + 1) : pending;
      if (rest) stream.push(Buffer.from(rest, 'latin1'));
    });
    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= (async () => {
        // The escape sequence ends the payload on the BMC; a kill alone leaves it active there.
        proc.stdin.write(`\r${SOL_ESCAPE}.`);
        const ended = await Promise.race([proc.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 1500))]);
        if (!ended) {
          await proc.stop(500);
          await this.exec(t, 'administrator', ['sol', 'deactivate']).catch(() => undefined);
        }
      })());
    const exited = proc.exited.then(({ code, stderr }) => {
      const why = stderr.split('\n').filter((l) => l && !NOISE.some((n) => n.test(l))).slice(-1)[0] ?? `exit ${code}`;
      if (code !== 0 && !closing) stream.destroy(new BmcError(`SOL session with ${t.address} ended: ${why}`, 'refused'));
      else stream.push(null);
      return why;
    });
    // Bytes the machine prints before the payload is live are lost: answer only once it is.
    const outcome = await Promise.race([
      ready.then(() => 'ready' as const),
      exited.then((why) => new BmcError(`BMC ${t.address} refused the serial console: ${why}`, 'refused')),
      new Promise<BmcError>((r) => setTimeout(() => r(new BmcError(`BMC ${t.address}: the serial console did not start within 5 s`, 'unreachable')), 5000)),
    ]);
    if (outcome !== 'ready') {
      closing = Promise.resolve();
      await proc.stop(500);
      throw outcome;
    }
    return { stream, close };
  }
}
