import { Inject, Injectable } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { mapLimit } from '../../common/concurrency';
import { ConsoleGrantRepository } from './console-grant.repository';
import { ConsoleService } from './console.service';
import { GrantExpiry } from './grant-expiry';

export interface ReconcileSummary {
  revoked: number;
  pending: number;
  unknownRemoved: number;
  errors: number;
}

/** A creation still "creating" after this long was cut off by a crash. */
const CREATING_STALE_SECONDS = 300;
const ACTOR = 'console-reconciler';
/** Sweeps arm a timer for every grant ending before the sweep after next (and this far ahead with no schedule). */
const LOOK_AHEAD_SECONDS = 300;

/**
 * Makes the BMCs match the grants: every account whose grant ended is removed (also the ones
 * that ended while racksmith was down: it runs at start), failed removals are retried, and
 * racksmith-made accounts no grant owns are removed.
 */
@Injectable()
export class ConsoleReconciler {
  private running: Promise<ReconcileSummary> | null = null;

  constructor(
    private readonly grants: ConsoleGrantRepository,
    private readonly console: ConsoleService,
    private readonly schedules: SchedulerRegistry,
    private readonly expiry: GrantExpiry,
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
  ) {}

  /**
   * `full`: look for unknown accounts on every BMC racksmith ever made one on (at start and on
   * request); the scheduled sweep looks only where grants lived in the last day.
   */
  reconcile(siteIds?: string[], full = true): Promise<ReconcileSummary> {
    return (this.running ??= this.run(siteIds ?? null, full).finally(() => (this.running = null)));
  }

  private async run(siteIds: string[] | null, full: boolean): Promise<ReconcileSummary> {
    const summary: ReconcileSummary = { revoked: 0, pending: 0, unknownRemoved: 0, errors: 0 };
    const due = await this.grants.due(siteIds, CREATING_STALE_SECONDS);
    await mapLimit(due, 8, async (g) => {
      try {
        const v = await this.console.revoke(g.id, g.reason, ACTOR);
        if (v.state === 'revoke-pending') summary.pending++;
        else summary.revoked++;
      } catch (err) {
        summary.errors++;
        this.log.error({ grantId: g.id, err: (err as Error).message }, 'could not revoke a console grant');
      }
    });
    await mapLimit(await this.grants.devicesWithGrants(siteIds, full ? null : 86_400), 8, async (deviceId) => {
      try {
        summary.unknownRemoved += (await this.console.removeUnknownAccounts(deviceId)).length;
      } catch (err) {
        summary.errors++;
        this.log.warn({ serverId: deviceId, err: (err as Error).message }, 'could not check the BMC for unknown racksmith accounts');
      }
    });
    // Grants made or extended by another process (role api) get their timer here, well before they end.
    const every = this.config.console.reconcileInterval;
    for (const g of await this.grants.activeEndingWithin(siteIds, every ? Math.max(2 * every + 5, 60) : LOOK_AHEAD_SECONDS)) this.expiry.arm(g.id, g.expires_at);
    if (summary.revoked || summary.pending || summary.unknownRemoved || summary.errors) this.log.info({ ...summary }, 'console grants reconciled');
    return summary;
  }

  /**
   * A grant's timer went off: revoke it if it has ended (it may have been extended since, or be
   * of a site this process does not serve: then only re-armed or left alone).
   */
  private async expire(grantId: string, siteIds: string[] | null): Promise<void> {
    const g = await this.grants.get(grantId);
    if (!g || g.state !== 'active' || (siteIds && !siteIds.includes(g.site_id))) return;
    if (g.expires_at.getTime() > Date.now()) return this.expiry.arm(g.id, g.expires_at);
    const v = await this.console.revoke(g.id, 'expired', ACTOR);
    this.log.info({ grantId, state: v.state, lateMs: Date.now() - g.expires_at.getTime() }, 'console grant expired');
  }

  /**
   * Expiry timers from now on, a sweep now (grants that ended while racksmith was down; it arms
   * the timers of grants that end soon), then a sweep every `console.reconcileInterval` seconds.
   */
  async start(siteIds?: string[]): Promise<void> {
    this.expiry.onDue((id) => void this.expire(id, siteIds ?? null).catch((err: Error) => this.log.error({ grantId: id, err: err.message }, 'could not revoke an expired console grant')));
    const every = this.config.console.reconcileInterval;
    const tick = (full: boolean) => void this.reconcile(siteIds, full).catch((err: Error) => this.log.error({ err: err.message }, 'console reconcile failed'));
    tick(true);
    if (every) this.schedules.addInterval('console-reconcile', setInterval(() => tick(false), every * 1000));
  }
}
