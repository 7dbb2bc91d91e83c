import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { requirePeer } from './peers';

/**
 * A scripted Redfish service for the lab tests, shaped after an iDRAC: HTTPS with a self-signed
 * certificate made for the run, one ComputerSystem with power, boot override and the Reset
 * action, 16 numbered account slots (2 = the admin), sessions, ETags with If-Match, and the
 * DMTF privilege model: Administrator may do anything, Operator may change the system, ReadOnly
 * may only read. `enforce: false` makes it a BMC that lets every user do everything.
 */
export interface RedfishSim {
  address: string;
  /** PEM of the certificate it serves (self-signed: its own CA). */
  ca: string;
  username: string;
  password: string;
  state: { power: 'On' | 'Off'; boot: Record<string, string>; resets: string[] };
  accounts: Map<number, { UserName: string; Password: string; RoleId: string; Enabled: boolean }>;
  sessions: Map<string, { user: string; token: string }>;
  requests: { method: string; path: string; user: string | null; status: number }[];
  enforce: boolean;
  /** Opens a session as a customer would (POST SessionService/Sessions); returns its id. */
  login(user: string, password: string): Promise<string | null>;
  stop(): Promise<void>;
}

const SYSTEM = '/redfish/v1/Systems/System.Embedded.1';
const RESET_TYPES = ['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart', 'PowerCycle'];

/** `port`: a TCP port to listen on (a BMC's IPMI and Redfish share one address: give ipmi_sim the same number on UDP). */
export async function startRedfishSim(opts: { enforce?: boolean; power?: 'On' | 'Off'; port?: number; username?: string; password?: string } = {}): Promise<RedfishSim> {
  requirePeer('/usr/bin/openssl', 'openssl');
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-redfish-'));
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`openssl: ${made.stderr}`);
  const ca = readFileSync(join(dir, 'cert.pem'), 'utf8');
  const key = readFileSync(join(dir, 'key.pem'), 'utf8');
  rmSync(dir, { recursive: true, force: true });

  const accounts = new Map<number, { UserName: string; Password: string; RoleId: string; Enabled: boolean }>();
  for (let i = 1; i <= 16; i++) accounts.set(i, { UserName: '', Password: '', RoleId: 'None', Enabled: false });
  const admin = { UserName: opts.username ?? 'root', Password: opts.password ?? 'calvin-sim-pw', RoleId: 'Administrator', Enabled: true };
  accounts.set(2, admin);
  let version = 1;
  const sim = {
    ca,
    username: admin.UserName,
    password: admin.Password,
    state: { power: opts.power ?? 'Off', boot: { BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideMode: 'UEFI' }, resets: [] as string[] },
    accounts,
    sessions: new Map<string, { user: string; token: string }>(),
    requests: [] as RedfishSim['requests'],
    enforce: opts.enforce ?? true,
  } as unknown as RedfishSim;

  const error = (res: ServerResponse, status: number, message: string) => send(res, status, { error: { code: 'Base.1.8.GeneralError', message, '@Message.ExtendedInfo': [{ Message: message }] } });
  const send = (res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(body === undefined ? '' : JSON.stringify(body));
  };
  const who = (req: IncomingMessage): { name: string; role: string } | null => {
    const token = req.headers['x-auth-token'];
    if (typeof token === 'string') {
      const s = [...sim.sessions.values()].find((x) => x.token === token);
      const a = s && [...accounts.values()].find((x) => x.UserName === s.user && x.Enabled);
      return a ? { name: a.UserName, role: a.RoleId } : null;
    }
    const m = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    if (!m) return null;
    const [user, ...rest] = Buffer.from(m[1]!, 'base64').toString().split(':');
    const a = [...accounts.values()].find((x) => x.UserName === user && x.UserName !== '' && x.Enabled && x.Password === rest.join(':'));
    return a ? { name: a.UserName, role: a.RoleId } : null;
  };
  const allowed = (role: string, need: 'read' | 'system' | 'users') => !sim.enforce || role === 'Administrator' || (need === 'system' && role === 'Operator') || (need === 'read' && role !== 'None');

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string, record: (user: string | null) => void) => {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '');
    const method = req.method ?? 'GET';
    let body: any = {};
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch {
        return error(res, 400, 'MalformedJSON');
      }
    }
    if (path === '/redfish/v1' && method === 'GET') return send(res, 200, { '@odata.id': '/redfish/v1', RedfishVersion: '1.11.0', Systems: { '@odata.id': '/redfish/v1/Systems' } });
    if (path === '/redfish/v1/SessionService/Sessions' && method === 'POST') {
      const a = [...accounts.values()].find((x) => x.UserName && x.UserName === body.UserName && x.Password === body.Password && x.Enabled);
      if (!a) return error(res, 401, 'login failed');
      const id = String(sim.sessions.size + 1 + Math.floor(Math.random() * 1e6));
      const token = randomBytes(16).toString('hex');
      sim.sessions.set(id, { user: a.UserName, token });
      record(a.UserName);
      return send(res, 201, { '@odata.id': `/redfish/v1/SessionService/Sessions/${id}`, Id: id, UserName: a.UserName }, { 'x-auth-token': token, location: `/redfish/v1/SessionService/Sessions/${id}` });
    }
    const user = who(req);
    record(user?.name ?? null);
    if (!user) return error(res, 401, 'authentication required');
    const need = method === 'GET' ? 'read' : path.startsWith('/redfish/v1/Systems') ? 'system' : 'users';
    if (!allowed(user.role, need)) return error(res, 403, `InsufficientPrivilege: ${user.role} may not ${method} ${path}`);
    const etag = `W/"${version}"`;

    if (path === '/redfish/v1/Systems' && method === 'GET') return send(res, 200, { Members: [{ '@odata.id': SYSTEM }], 'Members@odata.count': 1 });
    if (path === SYSTEM && method === 'GET') {
      return send(res, 200, { '@odata.id': SYSTEM, Id: 'System.Embedded.1', PowerState: sim.state.power, Boot: sim.state.boot, Actions: { '#ComputerSystem.Reset': { target: `${SYSTEM}/Actions/ComputerSystem.Reset`, 'ResetType@Redfish.AllowableValues': RESET_TYPES } } }, { etag });
    }
    if (path === SYSTEM && method === 'PATCH') {
      // Like iLO: a change must say which version it was made against.
      if (!req.headers['if-match']) return error(res, 428, 'PreconditionRequired');
      if (req.headers['if-match'] !== etag) return error(res, 412, 'PreconditionFailed');
      if (!body.Boot) return error(res, 400, 'EmptyJSON or unknown property');
      const b = body.Boot;
      if (b.BootSourceOverrideTarget && !['None', 'Pxe', 'Hdd', 'Cd', 'BiosSetup'].includes(b.BootSourceOverrideTarget)) return error(res, 400, 'PropertyValueNotInList BootSourceOverrideTarget');
      Object.assign(sim.state.boot, b);
      version++;
      return send(res, 204);
    }
    if (path === `${SYSTEM}/Actions/ComputerSystem.Reset` && method === 'POST') {
      if (!RESET_TYPES.includes(body.ResetType)) return error(res, 400, 'ActionParameterNotSupported ResetType');
      if (sim.state.power === 'Off' && body.ResetType !== 'On') return error(res, 409, 'system is off');
      sim.state.resets.push(body.ResetType);
      sim.state.power = body.ResetType === 'ForceOff' || body.ResetType === 'GracefulShutdown' ? 'Off' : 'On';
      version++;
      return send(res, 204);
    }
    if (path === '/redfish/v1/AccountService' && method === 'GET') return send(res, 200, { Accounts: { '@odata.id': '/redfish/v1/AccountService/Accounts' } });
    if (path === '/redfish/v1/AccountService' && method === 'PATCH') return Object.keys(body).length ? send(res, 204) : error(res, 400, 'EmptyJSON');
    if (path === '/redfish/v1/AccountService/Accounts' && method === 'GET') return send(res, 200, { Members: [...accounts.keys()].map((i) => ({ '@odata.id': `/redfish/v1/AccountService/Accounts/${i}` })) });
    const acc = /^\/redfish\/v1\/AccountService\/Accounts\/(\d+)$/.exec(path);
    if (acc) {
      const a = accounts.get(Number(acc[1]));
      if (!a) return error(res, 404, 'ResourceMissingAtURI');
      const aTag = `W/"a${acc[1]}-${version}"`;
      if (method === 'GET') return send(res, 200, { Id: acc[1], UserName: a.UserName, RoleId: a.RoleId, Enabled: a.Enabled, Password: null }, { etag: aTag });
      if (method === 'PATCH') {
        if (!req.headers['if-match']) return error(res, 428, 'PreconditionRequired');
        if (req.headers['if-match'] !== aTag) return error(res, 412, 'PreconditionFailed');
        if (body.UserName && [...accounts.entries()].some(([i, o]) => i !== Number(acc[1]) && o.UserName === body.UserName)) return error(res, 400, 'ResourceAlreadyExists UserName');
        if (body.RoleId && !['Administrator', 'Operator', 'ReadOnly', 'None'].includes(body.RoleId)) return error(res, 400, 'PropertyValueNotInList RoleId');
        if (body.Password !== undefined && (body.Password.length < 8 || body.Password.length > 20)) return error(res, 400, 'PropertyValueFormatError Password');
        for (const k of ['UserName', 'Password', 'RoleId', 'Enabled'] as const) if (body[k] !== undefined) (a as any)[k] = body[k];
        version++;
        return send(res, 204);
      }
    }
    if (path === '/redfish/v1/SessionService/Sessions' && method === 'GET') return send(res, 200, { Members: [...sim.sessions.keys()].map((id) => ({ '@odata.id': `/redfish/v1/SessionService/Sessions/${id}` })) });
    const ses = /^\/redfish\/v1\/SessionService\/Sessions\/(\d+)$/.exec(path);
    if (ses) {
      const s = sim.sessions.get(ses[1]!);
      if (!s) return error(res, 404, 'ResourceMissingAtURI');
      if (method === 'GET') return send(res, 200, { Id: ses[1], UserName: s.user });
      if (method === 'DELETE') {
        sim.sessions.delete(ses[1]!);
        return send(res, 204);
      }
    }
    return error(res, 405, `${method} ${path} is not supported`);
  };

  const server: Server = createServer({ key, cert: ca }, (req, res) => {
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      let user: string | null = null;
      try {
        handle(req, res, raw, (u) => (user = u));
      } finally {
        sim.requests.push({ method: req.method ?? '', path: req.url ?? '', user, status: res.statusCode });
      }
    });
  });
  await new Promise<void>((r) => server.listen(opts.port ?? 0, '127.0.0.1', () => r()));
  sim.address = `127.0.0.1:${(server.address() as { port: number }).port}`;
  const agent = new Agent({ connect: { ca } });
  sim.login = async (user, password) => {
    const res = await request(`https://${sim.address}/redfish/v1/SessionService/Sessions`, { method: 'POST', body: JSON.stringify({ UserName: user, Password: password }), headers: { 'content-type': 'application/json' }, dispatcher: agent });
    const body = (await res.body.json()) as { Id?: string };
    return res.statusCode === 201 ? body.Id! : null;
  };
  sim.stop = async () => {
    await agent.close();
    await new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); });
  };
  return sim;
}
