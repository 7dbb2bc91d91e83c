import { Injectable } from '@nestjs/common';
import { requestContext } from '../../common/request-context';
import type { PowerAction, PowerState } from '../../drivers/bmc/bmc-driver';
import { AuditService } from '../audit/audit.service';
import { BmcAccess, onBmc } from '../bmc/bmc-access.service';
import { BmcStatusRepository, type BmcStatusRow, type PowerEventRow } from '../bmc/bmc-status.repository';

export interface PowerView {
  serverId: string;
  powerState: PowerState | null;
  powerChangedAt: string | null;
  checkedAt: string | null;
  reachable: boolean | null;
  error: string | null;
  drift: string | null;
  privilegeCheck: BmcStatusRow['privilege_check'];
}

export interface PowerEventView {
  kind: PowerEventRow['kind'];
  action: string | null;
  from: string | null;
  to: string | null;
  actor: string;
  note: string | null;
  at: string;
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

export function powerView(serverId: string, s: BmcStatusRow | null): PowerView {
  return {
    serverId,
    powerState: s?.power_state ?? null,
    powerChangedAt: iso(s?.power_changed_at ?? null),
    checkedAt: iso(s?.checked_at ?? null),
    reachable: s?.reachable ?? null,
    error: s?.error ?? null,
    drift: s?.drift ?? null,
    privilegeCheck: s?.privilege_check ?? 'unknown',
  };
}

/** Lifecycle states in which a server is meant to be off: on is drift. */
const MEANT_OFF = new Set(['suspended', 'retired']);
export function driftOf(lifecycle: string | null, state: PowerState): string | null {
  return lifecycle && MEANT_OFF.has(lifecycle) && state === 'on' ? `on while ${lifecycle}` : null;
}

/** Power actions on a server by a person or by automation, recorded and audited. */
@Injectable()
export class ServerPowerService {
  constructor(
    private readonly bmc: BmcAccess,
    private readonly status: BmcStatusRepository,
    private readonly audit: AuditService,
  ) {}

  async get(serverId: string): Promise<PowerView & { events: PowerEventView[] }> {
    await this.bmc.forServer(serverId); // 404 / 409 no_bmc
    const events = await this.status.events(serverId, 20);
    return {
      ...powerView(serverId, await this.status.get(serverId)),
      events: events.map((e) => ({ kind: e.kind, action: e.action, from: e.from_state, to: e.to_state, actor: e.actor, note: e.note, at: e.at.toISOString() })),
    };
  }

  /**
   * Applies the action, reads the state back and records both. A BMC failure is a 502 and audited
   * too. `button` is a short press of the power button: on when off, an ACPI soft-off when on.
   */
  async act(serverId: string, action: PowerAction | 'button'): Promise<PowerView> {
    const actor = requestContext.actorName();
    const h = await this.bmc.forServer(serverId);
    const before = (await this.status.get(serverId))?.power_state ?? null;
    let after: PowerState;
    try {
      after = await onBmc(h, async ({ driver, target }) => {
        await driver.power(target, action === 'button' ? ((await driver.powerStatus(target)) === 'on' ? 'soft-off' : 'on') : action);
        return driver.powerStatus(target);
      });
    } catch (err) {
      await this.audit.record({ action: 'server.power', targetType: 'device', targetId: serverId, changes: { action, outcome: 'failed', error: (err as Error).message } });
      throw err;
    }
    await this.status.recordMany([{ deviceId: serverId, state: after, drift: driftOf(await this.status.lifecycle(serverId), after), error: null }]);
    await this.status.markChecked(serverId);
    await this.status.addEvent(serverId, { kind: 'action', action, from: before, to: after, actor });
    await this.audit.record({ action: 'server.power', targetType: 'device', targetId: serverId, changes: { action, from: before, to: after, server: h.device.name } });
    return powerView(serverId, await this.status.get(serverId));
  }
}
