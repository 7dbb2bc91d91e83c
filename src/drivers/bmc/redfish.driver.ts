import { randomBytes } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { Agent, request, type Dispatcher } from 'undici';
import { BmcError, type BmcDriver, type BmcTarget, type BmcUser, type BootDevice, type NewBmcUser, type PowerAction, type PowerState, type Privilege, type SessionsEnded, type SolSession } from './bmc-driver';

export interface RedfishOptions {
  /** Seconds per request (connect and answer), and attempts after the first on a network error. */
  timeoutSeconds: number;
  retries: number;
  /** PEM CA bundle the BMCs' certificates are checked against (BMCs mostly carry self-signed ones). */
  ca?: string;
  /** false: any certificate is accepted (a lab; never the default). */
  verifyTls: boolean;
}

/** Redfish roles for racksmith's privilege levels, and back. */
const ROLE: Record<Privilege, string> = { callback: 'ReadOnly', user: 'ReadOnly', operator: 'Operator', administrator: 'Administrator' };
const PRIVILEGE: Record<string, Privilege> = { ReadOnly: 'user', Operator: 'operator', Administrator: 'administrator' };
const RESET: Record<Exclude<PowerAction, 'on'>, string> = { off: 'ForceOff', 'soft-off': 'GracefulShutdown', cycle: 'PowerCycle', reset: 'ForceRestart' };

interface Answer {
  status: number;
  etag?: string;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}

interface Credentials {
  username: string;
  password: string;
}

/**
 * The Redfish (DMTF DSP0266) driver: JSON over HTTPS to the BMC, HTTP basic authentication on
 * each request (no session left behind), the first ComputerSystem of the service. User slots are
 * the numeric Ids of `AccountService/Accounts` (iDRAC, Supermicro, XCC and iLO number them);
 * services that only create accounts by POST are not supported yet. Redfish has no standard
 * serial console stream: a server's console stays with an IPMI driver.
 */
export class RedfishBmcDriver implements BmcDriver {
  readonly name = 'redfish';
  private readonly dispatcher: Dispatcher;
  /** The first system's path per BMC address: it never changes while the BMC runs. */
  private readonly systems = new Map<string, string>();

  constructor(private readonly opts: RedfishOptions) {
    this.dispatcher = new Agent({
      connect: { ca: opts.ca ? [...rootCertificates, opts.ca] : undefined, rejectUnauthorized: opts.verifyTls, timeout: opts.timeoutSeconds * 1000 },
      headersTimeout: opts.timeoutSeconds * 2000,
      bodyTimeout: opts.timeoutSeconds * 2000,
    });
  }

  /** "host", "host:port" or a full https:// URL → the service's origin. */
  private origin(t: BmcTarget): string {
    if (!t.address) throw new BmcError(`server ${t.serverId} has no BMC address`, 'unsupported');
    const origin = /^https?:\/\//.test(t.address) ? t.address.replace(/\/+$/, '') : `https://${t.address}`;
    const u = new URL(origin);
    if (u.protocol === 'http:' && !['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) throw new BmcError(`BMC ${t.address}: Redfish over plain HTTP is refused (credentials would cross the network in clear)`, 'unsupported');
    return u.origin;
  }

  private creds(t: BmcTarget): Credentials {
    if (!t.username) throw new BmcError(`BMC ${t.address} has no username in the inventory`, 'auth');
    return { username: t.username, password: t.password ?? '' };
  }

  /** One request; network failures are retried, answers are returned as they are. */
  private async send(t: BmcTarget, method: Dispatcher.HttpMethod, path: string, as: Credentials, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    const url = `${this.origin(t)}${path}`;
    let last: Error | undefined;
    for (let attempt = 0; attempt <= this.opts.retries; attempt++) {
      try {
        const res = await request(url, {
          method,
          dispatcher: this.dispatcher,
          headers: {
            accept: 'application/json',
            authorization: `Basic ${Buffer.from(`${as.username}:${as.password}`).toString('base64')}`,
            'odata-version': '4.0',
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
            ...headers,
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.body.text();
        let parsed: unknown = null;
        try {
          parsed = text ? JSON.parse(text) : null;
        } catch {
          parsed = text;
        }
        const etag = res.headers.etag;
        return { status: res.statusCode, etag: Array.isArray(etag) ? etag[0] : etag, body: parsed, headers: res.headers };
      } catch (err) {
        last = err as Error;
        const code = (err as { code?: string }).code ?? '';
        if (/CERT|SELF_SIGNED|TLS|SSL/i.test(code) || /certificate/i.test(last.message)) {
          throw new BmcError(`BMC ${t.address}: its TLS certificate is not trusted (${code || last.message}); give its CA in RACKSMITH_REDFISH_CA`, 'protocol');
        }
      }
    }
    throw new BmcError(`BMC ${t.address} unreachable: ${last?.message ?? 'no answer'}`, 'unreachable');
  }

  /** A request as racksmith's own account that must succeed; anything else is a BmcError. */
  private async call(t: BmcTarget, method: Dispatcher.HttpMethod, path: string, body?: unknown, headers?: Record<string, string>): Promise<Answer> {
    const a = await this.send(t, method, path, this.creds(t), body, headers);
    if (a.status === 401) throw new BmcError(`BMC ${t.address} refused ${t.username}: 401 Unauthorized`, 'auth');
    if (a.status >= 400) throw new BmcError(`BMC ${t.address}: ${method} ${path} failed: ${a.status} ${messageOf(a.body)}`, a.status === 403 ? 'refused' : a.status === 404 || a.status === 405 || a.status === 501 ? 'unsupported' : 'protocol');
    return a;
  }

  private async system(t: BmcTarget): Promise<string> {
    const known = this.systems.get(t.address);
    if (known) return known;
    const list = await this.call(t, 'GET', '/redfish/v1/Systems');
    const path = list.body?.Members?.[0]?.['@odata.id'];
    if (typeof path !== 'string') throw new BmcError(`BMC ${t.address}: its Redfish service lists no system`, 'protocol');
    this.systems.set(t.address, path);
    return path;
  }

  async powerStatus(t: BmcTarget): Promise<PowerState> {
    const sys = await this.call(t, 'GET', await this.system(t));
    const state = sys.body?.PowerState;
    // As Ironic reads them: a machine powering on counts as on, one powering off as off.
    if (state === 'On' || state === 'PoweringOn') return 'on';
    if (state === 'Off' || state === 'PoweringOff') return 'off';
    throw new BmcError(`BMC ${t.address}: unexpected PowerState ${JSON.stringify(state)}`, 'protocol');
  }

  async power(t: BmcTarget, action: PowerAction): Promise<void> {
    const path = await this.system(t);
    const sys = await this.call(t, 'GET', path);
    const on = sys.body?.PowerState === 'On' || sys.body?.PowerState === 'PoweringOn';
    const reset = sys.body?.Actions?.['#ComputerSystem.Reset'];
    const target: string = reset?.target ?? `${path}/Actions/ComputerSystem.Reset`;
    const allowed: string[] | undefined = reset?.['ResetType@Redfish.AllowableValues'];
    let type: string | null;
    if (!on) type = action === 'off' || action === 'soft-off' ? null : 'On';
    else type = action === 'on' ? null : RESET[action];
    if (!type) return;
    if (type === 'PowerCycle' && allowed && !allowed.includes('PowerCycle')) {
      // Not every BMC offers PowerCycle: off, then on.
      await this.call(t, 'POST', target, { ResetType: 'ForceOff' });
      type = 'On';
    }
    await this.call(t, 'POST', target, { ResetType: type });
  }

  async setBootDevice(t: BmcTarget, device: BootDevice, opts: { once: boolean; uefi?: boolean }): Promise<void> {
    const path = await this.system(t);
    const current = await this.call(t, 'GET', path);
    const boot: Record<string, string> = { BootSourceOverrideTarget: device === 'pxe' ? 'Pxe' : 'Hdd', BootSourceOverrideEnabled: opts.once ? 'Once' : 'Continuous' };
    if (opts.uefi !== undefined) boot.BootSourceOverrideMode = opts.uefi ? 'UEFI' : 'Legacy';
    // Several BMCs (iLO, iDRAC) want the ETag of what they were read as.
    await this.call(t, 'PATCH', path, { Boot: boot }, current.etag ? { 'if-match': current.etag } : undefined);
  }

  private account(slot: number): string {
    return `/redfish/v1/AccountService/Accounts/${slot}`;
  }

  async listUsers(t: BmcTarget): Promise<BmcUser[]> {
    const list = await this.call(t, 'GET', '/redfish/v1/AccountService/Accounts');
    const users: BmcUser[] = [];
    for (const m of list.body?.Members ?? []) {
      const a = await this.call(t, 'GET', m['@odata.id']);
      const slot = Number(a.body?.Id);
      if (!Number.isInteger(slot)) throw new BmcError(`BMC ${t.address}: account ${a.body?.Id} has no numeric Id; this Redfish service is not supported for user slots`, 'unsupported');
      const name = String(a.body?.UserName ?? '');
      users.push({ slot, name, enabled: a.body?.Enabled === true && !!name, privilege: PRIVILEGE[a.body?.RoleId] ?? null });
    }
    return users.sort((x, y) => x.slot - y.slot);
  }

  private async patchAccount(t: BmcTarget, slot: number, change: Record<string, unknown>): Promise<void> {
    const path = this.account(slot);
    const current = await this.call(t, 'GET', path);
    await this.call(t, 'PATCH', path, change, current.etag ? { 'if-match': current.etag } : undefined);
  }

  async createUser(t: BmcTarget, user: NewBmcUser): Promise<void> {
    await this.patchAccount(t, user.slot, { UserName: user.name, Password: user.password, RoleId: ROLE[user.privilege], Enabled: true });
  }

  async setUserPassword(t: BmcTarget, slot: number, password: string): Promise<void> {
    await this.patchAccount(t, slot, { Password: password });
  }

  async setUserEnabled(t: BmcTarget, slot: number, enabled: boolean): Promise<void> {
    await this.patchAccount(t, slot, { Enabled: enabled });
  }

  async deleteUser(t: BmcTarget, slot: number): Promise<void> {
    // As with IPMI slots: disabled, password scrambled, then the name cleared (iDRAC frees a slot so).
    await this.patchAccount(t, slot, { Enabled: false, Password: randomBytes(12).toString('base64') });
    await this.patchAccount(t, slot, { UserName: '', RoleId: 'None' });
  }

  /** The session resources of `name`, from the SessionService. */
  private async sessionsOf(t: BmcTarget, name: string): Promise<string[]> {
    const list = await this.call(t, 'GET', '/redfish/v1/SessionService/Sessions');
    const out: string[] = [];
    for (const m of list.body?.Members ?? []) {
      const s = await this.send(t, 'GET', m['@odata.id'], this.creds(t));
      if (s.status === 200 && s.body?.UserName === name) out.push(m['@odata.id']);
    }
    return out;
  }

  /** Deletes the user's session resources, then lists them again. Redfish has no SOL payloads. */
  async endUserSessions(t: BmcTarget, slot: number): Promise<SessionsEnded> {
    const name = (await this.call(t, 'GET', this.account(slot))).body?.UserName;
    if (!name) return { closed: 0, payloadsDeactivated: 0, remaining: [], refused: [] };
    let closed = 0;
    const refused: string[] = [];
    for (const path of await this.sessionsOf(t, name)) {
      const del = await this.send(t, 'DELETE', path, this.creds(t));
      if (del.status < 300) closed++;
      else refused.push(`DELETE ${path}: HTTP ${del.status} ${messageOf(del.body)}`.trim());
    }
    return { closed, payloadsDeactivated: 0, remaining: (await this.sessionsOf(t, name)).map((p) => `session ${p}`), refused };
  }

  /**
   * Redfish has no "session at a privilege": the login is tried with a change that only that
   * privilege may make, and that changes nothing (an empty PATCH). 401 or 403: refused. Anything
   * else (2xx, or 400 for the empty body) means the BMC let the request through its checks.
   */
  async canLogin(t: BmcTarget, username: string, password: string, privilege: Privilege): Promise<boolean> {
    const as = { username, password };
    const probe: [Dispatcher.HttpMethod, string, unknown?] =
      privilege === 'administrator' ? ['PATCH', '/redfish/v1/AccountService', {}] : privilege === 'operator' ? ['PATCH', await this.system(t), {}] : ['GET', '/redfish/v1/Systems'];
    const a = await this.send(t, probe[0], probe[1], as, probe[2]);
    return a.status !== 401 && a.status !== 403 && a.status < 500;
  }

  async openSol(t: BmcTarget): Promise<SolSession> {
    throw new BmcError(`BMC ${t.address}: Redfish has no serial console stream; give this server an IPMI console driver`, 'unsupported');
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

/** The first message of a Redfish error body (`error.@Message.ExtendedInfo`), or its code. */
function messageOf(body: any): string {
  const info = body?.error?.['@Message.ExtendedInfo']?.[0];
  return String(info?.Message ?? body?.error?.message ?? body?.error?.code ?? (typeof body === 'string' ? body.slice(0, 200) : ''));
}
