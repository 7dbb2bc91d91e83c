import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { ConflictError, DomainError, NotFoundError, ValidationError } from '../../common/errors';
import { randomString, randomToken, sha256Hex } from '../../common/crypto';
import { requestContext } from '../../common/request-context';
import { Database } from '../../database/database';
import { AuditService } from '../audit/audit.service';
import { BmcAccess, bmcDomainError, bmcEndpoint, onBmc, type BmcHandle } from '../bmc/bmc-access.service';
import { BmcStatusRepository } from '../bmc/bmc-status.repository';
import { WorkQueueService } from '../work-queue/work-queue.service';
import { ConsoleGrantRepository, type GrantRow } from './console-grant.repository';
import { SolRelay } from './sol-relay.service';
import { DevicesService } from '../inventory/devices.service';
import type { SessionsEnded } from '../../drivers/bmc/bmc-driver';
import { GrantExpiry } from './grant-expiry';

export interface GrantView {
  id: string;
  serverId: string;
  customer: string;
  state: GrantRow['state'];
  bmcHost: string;
  username: string;
  slot: number;
  expiresAt: string;
  riskAccepted: boolean;
  createdBy: string;
  createdAt: string;
  revokedAt: string | null;
  revokedBy: string | null;
  revokeReason: string | null;
  revokeAttempts: number;
  lastError: string | null;
}

/** What the customer receives, once: the password and the console link are not kept. */
export interface GrantCreated extends GrantView {
  password: string;
  consoleUrl: string;
}

/** Racksmith's accounts on BMCs: "rs-" and eight letters or digits (IPMI names are at most 16 bytes). */
export const GRANT_USERNAME = /^rs-[a-z0-9]{8}$/;
const PASSWORD_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
/** 16 characters from 57: about 93 bits, and 16 bytes is what every IPMI BMC stores. */
const PASSWORD_LENGTH = 16;
const MIN_TTL = 60;
/** Failed removals before a person is asked to look (work queue of the site). */
const ATTEMPTS_BEFORE_ESCALATION = 3;
/** Lifecycle states in which nobody gets console access. */
const NOT_GRANTABLE = ['suspended', 'wiping', 'retired'];

const iso = (d: Date | null) => d?.toISOString() ?? null;

/** The BMC still lists sessions of an account it was told to end: revocation not proven. */
class SessionsRemain extends Error {
  constructor(
    bmc: string,
    slot: number,
    readonly sessions: SessionsEnded,
  ) {
    super(
      `BMC ${bmc} still lists ${sessions.remaining.join(', ')} of the disabled account in slot ${slot} after racksmith ended its sessions` +
        (sessions.refused.length ? ` (refused: ${sessions.refused.join('; ')})` : ''),
    );
  }
}

/**
 * IPKVM grants: a time-boxed BMC account for a customer, in a slot reserved for racksmith,
 * checked before it is handed out (a BMC that gives an OPERATOR account an ADMINISTRATOR session
 * does not enforce privilege limits), and removed when the grant ends.
 */
/** A grant account's name (GRANT_USERNAME) and password. */
function newAccount(): { username: string; password: string } {
  return { username: `rs-${randomString(8, 'abcdefghijkmnopqrstuvwxyz23456789')}`, password: randomString(PASSWORD_LENGTH, PASSWORD_ALPHABET) };
}

@Injectable()
export class ConsoleService {
  constructor(
    private readonly grants: ConsoleGrantRepository,
    private readonly bmc: BmcAccess,
    private readonly status: BmcStatusRepository,
    private readonly audit: AuditService,
    private readonly work: WorkQueueService,
    private readonly db: Database,
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
    private readonly relay: SolRelay,
    private readonly devices: DevicesService,
    private readonly expiry: GrantExpiry,
  ) {}

  view(g: GrantRow, bmcAddress: string): GrantView {
    return {
      id: g.id,
      serverId: g.device_id,
      customer: g.customer,
      state: g.state,
      bmcHost: bmcAddress,
      username: g.username,
      slot: g.slot,
      expiresAt: g.expires_at.toISOString(),
      riskAccepted: g.risk_accepted,
      createdBy: g.created_by,
      createdAt: g.created_at.toISOString(),
      revokedAt: iso(g.revoked_at),
      revokedBy: g.revoked_by,
      revokeReason: g.revoke_reason,
      revokeAttempts: g.revoke_attempts,
      lastError: g.last_error,
    };
  }

  /** A slot in racksmith's range that holds no account and no live grant (409 `no_free_bmc_slot`). Under the device's lock. */
  private async freeSlot(h: BmcHandle, serverId: string): Promise<number> {
    const [lo, hi] = this.slotRange();
    const users = await onBmc(h, ({ driver, target }) => driver.listUsers(target));
    const held = await this.grants.liveSlots(serverId);
    const taken = new Map(users.map((u) => [u.slot, u]));
    const slot = Array.from({ length: hi - lo + 1 }, (_, i) => lo + i).find((s) => !held.has(s) && taken.has(s) && !taken.get(s)!.name);
    if (slot === undefined) {
      throw new ConflictError('no_free_bmc_slot', `BMC ${h.target.address} of server ${h.device.name} has no free user slot in ${lo}-${hi} (every one holds an account)`, { bmc: h.target.address, slots: `${lo}-${hi}` });
    }
    return slot;
  }

  /**
   * Whether a grant could be made on the server now, for an order about to pick it: its BMC is
   * reached, has a free slot, takes a new OPERATOR account, and does not give that account an
   * ADMINISTRATOR session (unless the server accepts the risk). The test account is taken down at
   * once (after a crash it is an "rs-…" account no grant owns, which the sweep removes). Records
   * the privilege check. Null when a grant could be made, else why not.
   */
  async probe(serverId: string): Promise<string | null> {
    let h: BmcHandle;
    try {
      h = await this.bmc.forServer(serverId);
    } catch (err) {
      return (err as Error).message;
    }
    return this.db.withSessionLock(this.lockKey(serverId), async () => {
      let slot: number | undefined;
      try {
        slot = await this.freeSlot(h, serverId);
        const { username, password } = newAccount();
        await h.driver.createUser(h.target, { slot, name: username, password, privilege: 'operator' });
        if (!(await h.driver.canLogin(h.target, username, password, 'operator'))) return `BMC ${h.target.address} of server ${h.device.name} created an account but refused its login`;
        const unsafe = await h.driver.canLogin(h.target, username, password, 'administrator');
        await this.status.setPrivilegeCheck(serverId, unsafe ? 'privilege-unsafe' : 'enforced');
        if (unsafe && !h.device.bmc!.acceptPrivilegeRisk) return `BMC ${h.target.address} of server ${h.device.name} does not enforce privilege limits (a new OPERATOR account got an ADMINISTRATOR session)`;
        return null;
      } catch (err) {
        return ((err instanceof DomainError ? err : bmcDomainError(err, h.device.name)) as Error).message;
      } finally {
        // The slot held no account before: clearing it takes down only the test account.
        if (slot !== undefined) await this.takeDown(h, slot).catch((err: Error) => this.log.warn({ serverId, slot, err: err.message }, 'could not remove the console probe account; the sweep removes it'));
      }
    });
  }

  private slotRange(): [number, number] {
    const [lo, hi] = this.config.console.slots.split('-').map(Number);
    return [lo!, hi!];
  }

  private checkTtl(ttl: number): void {
    if (ttl < MIN_TTL || ttl > this.config.console.maxTtl) throw new ValidationError(`ttl must be from ${MIN_TTL} to ${this.config.console.maxTtl} seconds, got ${ttl}`, 'ttl');
  }

  private lockKey(deviceId: string): string {
    return `bmc-users:${deviceId}`;
  }

  async get(id: string): Promise<GrantView> {
    const g = await this.grants.get(id);
    if (!g) throw new NotFoundError('console grant', id);
    return this.view(g, await this.bmcAddress(g.device_id));
  }

  /** Where the grant's BMC is, for its view (no driver or credentials needed to show a grant). */
  private async bmcAddress(serverId: string): Promise<string> {
    const bmc = (await this.devices.get(serverId)).bmc;
    return bmc ? bmcEndpoint(bmc) : '';
  }

  async list(filter: { serverId?: string; customer?: string; live?: boolean }, limit: number): Promise<GrantView[]> {
    const rows = await this.grants.list({ deviceId: filter.serverId, customer: filter.customer, live: filter.live }, limit);
    const address = new Map<string, string>();
    const out: GrantView[] = [];
    for (const g of rows) {
      if (!address.has(g.device_id)) address.set(g.device_id, await this.bmcAddress(g.device_id));
      out.push(this.view(g, address.get(g.device_id)!));
    }
    return out;
  }

  async create(serverId: string, input: { customer: string; ttl: number }, baseUrl: string): Promise<GrantCreated> {
    this.checkTtl(input.ttl);
    const actor = requestContext.actorName();
    const h = await this.bmc.forServer(serverId);
    const lifecycle = await this.status.lifecycle(serverId);
    if (lifecycle && NOT_GRANTABLE.includes(lifecycle)) throw new ConflictError('server_not_grantable', `server ${h.device.name} is ${lifecycle}: no console access`, { state: lifecycle });

    return this.db.withSessionLock(this.lockKey(serverId), async () => {
      const slot = await this.freeSlot(h, serverId);
      const { username, password } = newAccount();
      const consoleToken = randomToken(24);
      // Committed before the BMC is touched: a crash from here on leaves a row the reconciler cleans up.
      const row = await this.grants.insert({ deviceId: serverId, siteId: h.device.siteId, customer: input.customer, slot, username, tokenHash: sha256Hex(consoleToken), ttlSeconds: input.ttl, createdBy: actor });

      const fail = async (err: unknown, state: 'failed' | 'refused', reason: string) => {
        const removed = await this.removeAccount(h, row, actor, reason, state);
        await this.audit.record({ action: `console-grant.${state === 'refused' ? 'refuse' : 'fail'}`, targetType: 'device', targetId: serverId, changes: { grantId: row.id, customer: input.customer, reason, accountRemoved: removed.row.state !== 'revoke-pending' } });
        return err;
      };
      try {
        await h.driver.createUser(h.target, { slot, name: username, password, privilege: 'operator' });
        if (!(await h.driver.canLogin(h.target, username, password, 'operator'))) {
          throw new DomainError('bmc_grant_unverified', `BMC ${h.target.address} of server ${h.device.name} created the account but refused its login`, 502);
        }
      } catch (err) {
        throw await fail(bmcDomainError(err, h.device.name), 'failed', `could not create the account: ${(err as Error).message}`);
      }

      // Verify before handing out: an OPERATOR account must not get an ADMINISTRATOR session.
      let unsafe: boolean;
      try {
        unsafe = await h.driver.canLogin(h.target, username, password, 'administrator');
      } catch (err) {
        throw await fail(bmcDomainError(err, h.device.name), 'failed', `could not check the BMC's privilege limits: ${(err as Error).message}`);
      }
      await this.status.setPrivilegeCheck(serverId, unsafe ? 'privilege-unsafe' : 'enforced');
      const accepted = unsafe && h.device.bmc!.acceptPrivilegeRisk;
      if (unsafe && !accepted) {
        this.log.warn({ serverId, bmc: h.target.address }, 'BMC does not enforce privilege limits: grant refused, account removed');
        throw await fail(
          new ConflictError(
            'bmc_privilege_unsafe',
            `BMC ${h.target.address} of server ${h.device.name} gave the new OPERATOR account an ADMINISTRATOR session: it does not enforce privilege limits, ` +
              `so the customer could take over the BMC. The account was removed and the BMC is marked privilege-unsafe. ` +
              `To grant anyway, set bmc.acceptPrivilegeRisk on the server; the web serial console through racksmith works either way.`,
            { bmc: h.target.address, privilegeCheck: 'privilege-unsafe' },
          ),
          'refused',
          'privilege-unsafe BMC',
        );
      }
      const active = await this.grants.activate(row.id, accepted);
      this.expiry.arm(active.id, active.expires_at);
      await this.audit.record({
        action: 'console-grant.create',
        targetType: 'device',
        targetId: serverId,
        changes: { grantId: row.id, customer: input.customer, slot, username, expiresAt: active.expires_at.toISOString(), privilegeCheck: unsafe ? 'privilege-unsafe' : 'enforced', ...(accepted ? { riskAccepted: 'BMC does not enforce privilege limits; granted because the server accepts the risk' } : {}) },
      });
      return { ...this.view(active, h.target.address), password, consoleUrl: `${baseUrl.replace(/\/$/, '')}/console/${row.id}#${consoleToken}` };
    });
  }

  async extend(id: string, ttl: number): Promise<GrantView> {
    this.checkTtl(ttl);
    const g = await this.grants.get(id);
    if (!g) throw new NotFoundError('console grant', id);
    const extended = await this.grants.extend(id, ttl);
    if (!extended) throw new ConflictError('grant_not_active', `console grant ${id} is ${g.state}; only an active grant can be extended`, { state: g.state });
    this.expiry.arm(id, extended.expires_at);
    await this.audit.record({ action: 'console-grant.extend', targetType: 'device', targetId: g.device_id, changes: { grantId: id, expiresAt: extended.expires_at.toISOString() } });
    return this.get(id);
  }

  /** Ends the grant: the account is disabled, its sessions closed and the slot cleared. */
  async revoke(id: string, reason: string, actor = requestContext.actorName()): Promise<GrantView> {
    const g = await this.grants.get(id);
    if (!g) throw new NotFoundError('console grant', id);
    const h = await this.bmc.forServer(g.device_id);
    return this.db.withSessionLock(this.lockKey(g.device_id), async () => {
      const current = (await this.grants.get(id))!;
      if (!['creating', 'active', 'revoke-pending'].includes(current.state)) return this.view(current, h.target.address);
      const { row: done, sessions } = await this.removeAccount(h, current, actor, reason, 'revoked');
      this.relay.disconnectGrant(id);
      this.expiry.clear(id);
      await this.audit.record({
        action: 'console-grant.revoke',
        targetType: 'device',
        targetId: g.device_id,
        changes: {
          grantId: id,
          reason,
          state: done.state,
          ...(sessions ? { sessionsClosed: sessions.closed, payloadsDeactivated: sessions.payloadsDeactivated, sessionsRemaining: sessions.remaining, ...(sessions.refused.length ? { bmcRefused: sessions.refused } : {}) } : {}),
          ...(done.last_error && done.state === 'revoke-pending' ? { error: done.last_error } : {}),
        },
      });
      return this.view(done, h.target.address);
    });
  }

  /** Revokes every live grant of a server (suspension, termination). */
  async revokeAllForServer(serverId: string, reason: string): Promise<GrantView[]> {
    const out: GrantView[] = [];
    for (const g of await this.grants.liveByDevice(serverId)) out.push(await this.revoke(g.id, reason));
    return out;
  }

  /**
   * Takes the grant's account off the BMC, under the device's lock. The slot is cleared only
   * while it still holds this grant's account, never a staff account that took the slot since.
   * A BMC failure, or a session of the account the BMC still lists after it was told to end it,
   * leaves the grant `revoke-pending` with the account disabled (the reconciler retries; after
   * a few attempts the site's work queue gets a task).
   */
  private async removeAccount(h: BmcHandle, g: GrantRow, actor: string, reason: string, finalState: 'revoked' | 'refused' | 'failed'): Promise<{ row: GrantRow; sessions: SessionsEnded | null }> {
    let sessions: SessionsEnded | null = null;
    try {
      const user = (await h.driver.listUsers(h.target)).find((u) => u.slot === g.slot);
      if (user && user.name === g.username) sessions = await this.takeDown(h, g.slot);
      const row = await this.grants.finish(g.id, finalState, actor, reason, user && user.name && user.name !== g.username ? `slot ${g.slot} holds ${user.name} now; left alone` : null);
      return { row, sessions };
    } catch (err) {
      const message = (err as Error).message;
      if (err instanceof SessionsRemain) sessions = err.sessions;
      const row = await this.grants.revokeFailed(g.id, actor, reason, message);
      this.log.warn({ grantId: g.id, serverId: g.device_id, attempts: row.revoke_attempts, err: message }, 'could not remove the console account; will retry');
      if (row.revoke_attempts === ATTEMPTS_BEFORE_ESCALATION) {
        await this.work.open(g.site_id, 'automation-failure', `Remove IPKVM account ${g.username} (slot ${g.slot}) from the BMC of ${h.device.name}`, { type: 'console-grant', id: g.id }, {
          bmc: h.target.address,
          error: message,
          attempts: row.revoke_attempts,
        });
      }
      return { row, sessions };
    }
  }

  /**
   * Disable, end every session and SOL payload, and only when the BMC lists none of them any
   * more, clear the slot. Otherwise the account stays in its slot, disabled, so that the next
   * attempt still finds it by name (SessionsRemain).
   */
  private async takeDown(h: BmcHandle, slot: number): Promise<SessionsEnded> {
    await h.driver.setUserEnabled(h.target, slot, false);
    const sessions = await h.driver.endUserSessions(h.target, slot);
    if (sessions.remaining.length) throw new SessionsRemain(h.target.address, slot, sessions);
    await h.driver.deleteUser(h.target, slot);
    return sessions;
  }

  /** Under the BMC's lock: remove accounts racksmith made ("rs-…" in its slots) that no live grant owns. */
  async removeUnknownAccounts(serverId: string): Promise<string[]> {
    const h = await this.bmc.forServer(serverId);
    return this.db.withSessionLock(this.lockKey(serverId), async () => {
      const [lo, hi] = this.slotRange();
      const known = new Set((await this.grants.liveByDevice(serverId)).map((g) => `${g.slot}:${g.username}`));
      const removed: string[] = [];
      for (const u of await h.driver.listUsers(h.target)) {
        if (u.slot < lo || u.slot > hi || !GRANT_USERNAME.test(u.name) || known.has(`${u.slot}:${u.name}`)) continue;
        try {
          await this.takeDown(h, u.slot);
        } catch (err) {
          if (!(err instanceof SessionsRemain)) throw err;
          // Disabled, and tried again at the next sweep.
          this.log.warn({ serverId, slot: u.slot, username: u.name, err: err.message }, 'unknown racksmith account disabled; its sessions are still listed');
          continue;
        }
        removed.push(u.name);
        await this.audit.record({ action: 'console-grant.remove-unknown', targetType: 'device', targetId: serverId, changes: { slot: u.slot, username: u.name } });
      }
      return removed;
    });
  }
}
