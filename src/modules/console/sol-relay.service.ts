import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { LOGGER } from '../../app.tokens';
import { safeEqual, sha256Hex } from '../../common/crypto';
import { requestContext, type Actor } from '../../common/request-context';
import type { SolSession } from '../../drivers/bmc/bmc-driver';
import { AuditService } from '../audit/audit.service';
import { TokenService } from '../auth/token.service';
import { BmcAccess } from '../bmc/bmc-access.service';
import { ConsoleGrantRepository } from './console-grant.repository';
import { VmConsoleService } from '../vps/vm-console.service';

/** The first message of a console WebSocket: a grant and its token (a server's, or a VM's), or an engineer's API token. */
type Hello = { grant: string; token: string } | { server: string; apiToken: string } | { vmGrant: string; token: string } | { vm: string; apiToken: string };

/** Who may open which console: a server's SOL or a VM's serial console. */
interface Admitted {
  /** `server:<id>` or `vm:<id>`: one console per key, shared. */
  key: string;
  targetType: 'device' | 'vm';
  targetId: string;
  actor: Actor;
  grantId: string | null;
  /** Whether the grant still holds (checked every 15 s while its console is open). */
  live: (() => Promise<boolean>) | null;
  open: () => Promise<SolSession>;
}

interface Client {
  ws: WebSocket;
  actor: Actor;
  grantId: string | null;
  openedAt: number;
  bytesIn: number;
}

interface ServerConsole {
  key: string;
  sol: SolSession;
  clients: Client[];
  /** The one client whose keystrokes reach the server; the others watch. */
  writer: Client | null;
  /** The last bytes of output, replayed to whoever joins (the prompt they would otherwise miss). */
  tail: Buffer;
}

const TAIL_BYTES = 8 * 1024;

const HELLO_TIMEOUT_MS = 10_000;
const GRANT_RECHECK_MS = 15_000;
const STAFF_ROLES = new Set(['admin', 'engineer', 'support']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Relays a server's serial-over-LAN console (or a VM's serial console, through its hypervisor) to
 * WebSockets. One session per server or VM, shared by
 * everyone watching it; one writer at a time (the first in; the next oldest when it leaves).
 * Text frames carry JSON status, binary frames the console bytes. Every session is audited with
 * who opened it and for how long.
 */
@Injectable()
export class SolRelay implements OnApplicationShutdown {
  private readonly consoles = new Map<string, Promise<ServerConsole>>();

  constructor(
    private readonly bmc: BmcAccess,
    private readonly grants: ConsoleGrantRepository,
    private readonly tokens: TokenService,
    private readonly audit: AuditService,
    @Inject(LOGGER) private readonly log: Logger,
    private readonly vmConsoles: VmConsoleService,
  ) {
    vmConsoles.onEnded((grantId) => this.disconnectGrant(grantId));
  }

  /** A new WebSocket: it must say who it is within 10 s. */
  accept(ws: WebSocket): void {
    const timer = setTimeout(() => this.refuse(ws, 'no hello within 10 s'), HELLO_TIMEOUT_MS);
    ws.once('message', (data, isBinary) => {
      clearTimeout(timer);
      let hello: Hello;
      try {
        if (isBinary) throw new Error('binary');
        hello = JSON.parse(data.toString()) as Hello;
      } catch {
        return this.refuse(ws, 'the first message must be JSON: {"grant","token"}, {"vmGrant","token"}, {"server","apiToken"} or {"vm","apiToken"}');
      }
      this.authorise(hello).then(
        (who) => (who ? this.join(ws, who) : this.refuse(ws, 'not authorised for this console')),
        (err: Error) => this.refuse(ws, err.message),
      );
    });
    ws.on('error', () => undefined);
  }

  private refuse(ws: WebSocket, message: string): void {
    if (ws.readyState === ws.OPEN) {
      ws.send(JSON.stringify({ type: 'error', message }));
      ws.close(4401, 'refused');
    }
  }

  private async authorise(h: Hello): Promise<Admitted | null> {
    const server = (id: string, actor: Actor, grantId: string | null, live: Admitted['live']): Admitted => ({
      key: `server:${id}`,
      targetType: 'device',
      targetId: id,
      actor,
      grantId,
      live,
      open: async () => {
        const { driver, target } = await this.bmc.forServer(id, 'console');
        return driver.openSol(target);
      },
    });
    const vm = (id: string, actor: Actor, grantId: string | null, live: Admitted['live']): Admitted => ({ key: `vm:${id}`, targetType: 'vm', targetId: id, actor, grantId, live, open: () => this.vmConsoles.open(id) });
    const staff = async (apiToken: unknown) => {
      const actor = typeof apiToken === 'string' ? await this.tokens.authenticate(apiToken) : null;
      return actor && STAFF_ROLES.has(actor.role) ? actor : null;
    };
    if ('grant' in h && typeof h.grant === 'string' && typeof h.token === 'string' && UUID.test(h.grant)) {
      const g = await this.grants.get(h.grant);
      if (!g || g.state !== 'active' || g.expires_at.getTime() <= Date.now() || !safeEqual(g.console_token_hash, sha256Hex(h.token))) return null;
      const id = g.id;
      return server(g.device_id, { kind: 'system', name: `customer:${g.customer}`, role: 'readonly' }, id, async () => {
        const now = await this.grants.get(id);
        return !!now && now.state === 'active' && now.expires_at.getTime() > Date.now();
      });
    }
    if ('vmGrant' in h && typeof h.vmGrant === 'string' && typeof h.token === 'string' && UUID.test(h.vmGrant)) {
      const g = await this.vmConsoles.authorise(h.vmGrant, h.token);
      const id = h.vmGrant;
      return g ? vm(g.vmId, { kind: 'system', name: `customer:${g.customer}`, role: 'readonly' }, id, () => this.vmConsoles.live(id)) : null;
    }
    if ('server' in h && typeof h.server === 'string' && UUID.test(h.server)) {
      const actor = await staff(h.apiToken);
      return actor ? server(h.server, actor, null, null) : null;
    }
    if ('vm' in h && typeof h.vm === 'string' && UUID.test(h.vm)) {
      const actor = await staff(h.apiToken);
      return actor ? vm(h.vm, actor, null, null) : null;
    }
    return null;
  }

  private async open(who: Admitted): Promise<ServerConsole> {
    const sol = await who.open();
    const c: ServerConsole = { key: who.key, sol, clients: [], writer: null, tail: Buffer.alloc(0) };
    sol.stream.on('data', (chunk: Buffer) => {
      c.tail = Buffer.concat([c.tail, chunk]);
      if (c.tail.length > TAIL_BYTES) c.tail = c.tail.subarray(c.tail.length - TAIL_BYTES);
      for (const client of c.clients) if (client.ws.readyState === client.ws.OPEN) client.ws.send(chunk, { binary: true });
    });
    const ended = (why: string) => {
      for (const client of [...c.clients]) {
        this.status(client, c, why);
        client.ws.close(1011, 'console ended');
      }
      this.consoles.delete(who.key);
    };
    sol.stream.on('error', (err: Error) => ended(err.message));
    sol.stream.on('end', () => ended(who.targetType === 'vm' ? 'the hypervisor ended the serial console' : 'the BMC ended the serial console'));
    return c;
  }

  private status(client: Client, c: ServerConsole, message?: string): void {
    if (client.ws.readyState === client.ws.OPEN) client.ws.send(JSON.stringify({ type: 'status', writer: c.writer === client, watchers: c.clients.length, message }));
  }

  private async join(ws: WebSocket, who: Admitted): Promise<void> {
    const { actor, grantId } = who;
    let pending = this.consoles.get(who.key);
    if (!pending) {
      pending = this.open(who);
      this.consoles.set(who.key, pending);
      pending.catch(() => this.consoles.delete(who.key));
    }
    let c: ServerConsole;
    try {
      c = await pending;
    } catch (err) {
      return this.refuse(ws, `could not open the serial console: ${(err as Error).message}`);
    }
    if (ws.readyState !== ws.OPEN) return void (c.clients.length || this.close(c));
    const client: Client = { ws, actor, grantId, openedAt: Date.now(), bytesIn: 0 };
    if (c.tail.length) ws.send(c.tail, { binary: true });
    c.clients.push(client);
    c.writer ??= client;
    await this.record(actor, 'console.session.open', who, { grantId, writer: c.writer === client });
    for (const other of c.clients) this.status(other, c, other === client ? (c.writer === client ? 'connected; you can type' : 'connected read-only: someone else is typing') : undefined);

    ws.on('message', (data: Buffer, isBinary) => {
      if (c.writer !== client) return;
      client.bytesIn += data.length;
      c.sol.stream.write(isBinary ? data : Buffer.from(data.toString(), 'utf8'));
    });
    // A grant revoked or expired while its console is open: the console closes too.
    const live = who.live;
    const recheck = live
      ? setInterval(() => {
          void live().then((ok) => {
            if (!ok) {
              this.status(client, c, 'the console grant has ended');
              ws.close(4403, 'grant ended');
            }
          });
        }, GRANT_RECHECK_MS)
      : null;
    ws.on('close', () => {
      if (recheck) clearInterval(recheck);
      c.clients = c.clients.filter((x) => x !== client);
      if (c.writer === client) c.writer = c.clients[0] ?? null;
      void this.record(actor, 'console.session.close', who, { grantId, seconds: Math.round((Date.now() - client.openedAt) / 1000), bytesTyped: client.bytesIn });
      if (!c.clients.length) void this.close(c);
      else for (const other of c.clients) this.status(other, c, c.writer === other ? 'you can type now' : undefined);
    });
  }

  private async close(c: ServerConsole): Promise<void> {
    if ((await this.consoles.get(c.key)) === c) this.consoles.delete(c.key);
    await c.sol.close().catch((err: Error) => this.log.warn({ console: c.key, err: err.message }, 'closing the serial console failed'));
  }

  /** Closes every console of a grant (revocation in this process). */
  disconnectGrant(grantId: string): void {
    for (const pending of this.consoles.values()) {
      void pending.then((c) => {
        for (const client of c.clients) if (client.grantId === grantId) client.ws.close(4403, 'grant ended');
      }, () => undefined);
    }
  }

  private record(actor: Actor, action: string, who: Admitted, changes: Record<string, unknown>): Promise<void> {
    return requestContext.run({ source: 'api', actor }, () => this.audit.record({ action, targetType: who.targetType, targetId: who.targetId, changes })).catch((err: Error) => {
      this.log.error({ err: err.message, action }, 'could not audit a console session');
    });
  }

  async onApplicationShutdown(): Promise<void> {
    const all = await Promise.allSettled([...this.consoles.values()]);
    for (const r of all) {
      if (r.status !== 'fulfilled') continue;
      for (const client of r.value.clients) client.ws.close(1001, 'racksmith is stopping');
      await r.value.sol.close().catch(() => undefined);
    }
    this.consoles.clear();
  }
}
