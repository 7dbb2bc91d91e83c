import { Inject, Injectable } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { mapLimit } from '../../common/concurrency';
import { ConsoleGrantRepository } from './console-grant.repository';
import { ConsoleService } from './console.service';

export interface ReconcileSummary {
  revoked: number;
  pending: number;
  unknownRemoved: number;
  errors: number;
}

/** A creation still "creating" after this long was cut off by a crash. */
const CREATING_STALE_SECONDS = 300;
const ACTOR = 'console-reconciler';

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
    if (summary.revoked || summary.pending || summary.unknownRemoved || summary.errors) this.log.info({ ...summary }, 'console grants reconciled');
    return summary;
  }

  /** Once now (grants that ended while racksmith was down), then every `console.reconcileInterval` seconds. */
  async start(siteIds?: string[]): Promise<void> {
    const every = this.config.console.reconcileInterval;
    const tick = (full: boolean) => void this.reconcile(siteIds, full).catch((err: Error) => this.log.error({ err: err.message }, 'console reconcile failed'));
    tick(true);
    if (every) this.schedules.addInterval('console-reconcile', setInterval(() => tick(false), every * 1000));
  }
}
