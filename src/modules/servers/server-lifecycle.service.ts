import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';
import { ConflictError, NotFoundError } from '../../common/errors';
import type { Page } from '../../common/pagination';
import { requestContext } from '../../common/request-context';
import { AuditService } from '../audit/audit.service';
import { SitesService } from '../inventory/sites.service';
import type { DeviceEntity } from '../inventory/inventory.entities';
import { ServerRepository } from './servers.repository';
import { canMove, TRANSITIONS, type LifecycleState } from './lifecycle';

export interface Cause {
  type: 'user' | 'job' | 'billing' | 'system';
  id?: string;
  note?: string;
}

export interface ServerView {
  id: string;
  siteId: string;
  name: string;
  state: LifecycleState;
  maintenance: { enabled: boolean; reason: string | null };
  lastError: string | null;
  /** The states it may move to from here. */
  next: LifecycleState[];
  placement: { rackId: string; position: number } | null;
}

export function serverView(d: DeviceEntity): ServerView {
  const state = d.lifecycle as LifecycleState;
  return {
    id: d.id,
    siteId: d.siteId,
    name: d.name,
    state,
    maintenance: { enabled: d.maintenance, reason: d.maintenanceReason },
    lastError: d.lastError,
    next: TRANSITIONS[state],
    placement: d.rackId ? { rackId: d.rackId, position: d.position! } : null,
  };
}

const actor = () => requestContext.actorName();

/**
 * The only way a server's lifecycle state changes. A move the machine does not allow is a 409
 * that names the current state; every move is kept with its cause (a user, a job, a billing
 * event); automation (anything but a user) leaves a server in maintenance alone.
 */
@Injectable()
export class ServerLifecycleService {
  constructor(
    private readonly servers: ServerRepository,
    private readonly sites: SitesService,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  async get(id: string): Promise<ServerView> {
    const d = await this.servers.findServer(id);
    if (!d) throw new NotFoundError('server', id);
    return serverView(d);
  }

  async list(filter: { site?: string; state?: LifecycleState; maintenance?: boolean }, limit: number, cursor?: string): Promise<Page<ServerView>> {
    const siteId = filter.site ? (await this.sites.resolve(filter.site, 'site')).id : undefined;
    const page = await this.servers.list({ siteId, lifecycle: filter.state, maintenance: filter.maintenance }, limit, cursor);
    return { items: page.items.map(serverView), nextCursor: page.nextCursor };
  }

  /**
   * Move a server to `to`. `from`, when given, is what the caller expects it to be in (a job
   * that reserved the server moving it on); anything else is a 409 too.
   */
  transition(id: string, to: LifecycleState, cause: Cause, opts: { from?: LifecycleState[]; lastError?: string | null } = {}): Promise<ServerView> {
    return this.db.transaction(async () => {
      const d = await this.servers.lockServer(id);
      if (!d) throw new NotFoundError('server', id);
      const from = d.lifecycle as LifecycleState;
      if (cause.type !== 'user' && d.maintenance) {
        throw new ConflictError('in_maintenance', `server ${d.name} is in maintenance${d.maintenanceReason ? ` (${d.maintenanceReason})` : ''}: automation leaves it alone`, { state: from });
      }
      if ((opts.from && !opts.from.includes(from)) || !canMove(from, to)) {
        throw new ConflictError('illegal_transition', `server ${d.name} is ${from}; it cannot move to ${to} (from ${from} it can go to ${TRANSITIONS[from].join(', ')})`, {
          state: from,
          requested: to,
          allowed: TRANSITIONS[from],
        });
      }
      const lastError = to === 'failed' ? (opts.lastError ?? cause.note ?? null) : opts.lastError;
      await this.servers.setState(id, to, lastError);
      await this.servers.addTransition({ deviceId: id, from, to, causeType: cause.type, causeId: cause.id, actor: actor(), note: cause.note });
      await this.audit.record({ action: 'server.transition', targetType: 'server', targetId: id, changes: { from, to, cause } });
      return this.get(id);
    });
  }

  setMaintenance(id: string, enabled: boolean, reason?: string): Promise<ServerView> {
    return this.db.transaction(async () => {
      const d = await this.servers.lockServer(id);
      if (!d) throw new NotFoundError('server', id);
      await this.servers.setMaintenance(id, enabled, reason ?? null);
      await this.audit.record({ action: enabled ? 'server.maintenance_on' : 'server.maintenance_off', targetType: 'server', targetId: id, changes: { reason } });
      return this.get(id);
    });
  }

  async history(id: string) {
    await this.get(id);
    return (await this.servers.history(id)).map((t) => ({
      from: t.from_state,
      to: t.to_state,
      cause: { type: t.cause_type, id: t.cause_id },
      actor: t.actor,
      note: t.note,
      at: t.at.toISOString(),
    }));
  }
}
