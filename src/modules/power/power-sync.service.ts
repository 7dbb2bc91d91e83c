import { Inject, Injectable } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { Histogram } from 'prom-client';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { mapLimit, withDeadline } from '../../common/concurrency';
import type { BmcDriver, BmcError, PowerState } from '../../drivers/bmc/bmc-driver';
import { BmcAccess, bmcDomainError, onBmc, type BmcHandle } from '../bmc/bmc-access.service';
import { BmcStatusRepository, type SyncTarget } from '../bmc/bmc-status.repository';
import { MetricsService } from '../metrics/metrics.service';
import { driftOf } from './server-power.service';

export interface PowerSyncSummary {
  checked: number;
  on: number;
  off: number;
  unreachable: number;
  changed: number;
  drift: number;
  ms: number;
}

const ACTOR = 'power-sync';

/**
 * Reads the power state of every server with a BMC (of this agent's sites), records what changed,
 * flags drift and marks BMCs that do not answer. Bounded concurrency; each BMC has a deadline, so
 * one dead BMC costs seconds, never the whole sync.
 */
@Injectable()
export class PowerSync {
  private running: Promise<PowerSyncSummary> | null = null;
  private readonly duration: Histogram;

  constructor(
    private readonly bmc: BmcAccess,
    private readonly status: BmcStatusRepository,
    private readonly schedules: SchedulerRegistry,
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
    metrics: MetricsService,
  ) {
    this.duration = new Histogram({
      name: 'racksmith_power_sync_duration_seconds',
      help: 'Wall time of one power-state sync over all BMCs',
      buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers: [metrics.registry],
    });
  }

  /** Deadline per BMC: the driver's own attempts, with room for a slow answer. */
  private deadlineMs(): number {
    return (this.config.bmc.timeout * (this.config.bmc.retries + 1) * 2 + 10) * 1000;
  }

  /** One sync; a call while one runs joins it. */
  sync(filter: { siteIds?: string[]; ids?: string[] } = {}): Promise<PowerSyncSummary> {
    return (this.running ??= this.run(filter).finally(() => (this.running = null)));
  }

  private async run(filter: { siteIds?: string[]; ids?: string[] }): Promise<PowerSyncSummary> {
    const started = Date.now();
    const targets = await this.status.syncTargets(filter);
    const summary: PowerSyncSummary = { checked: targets.length, on: 0, off: 0, unreachable: 0, changed: 0, drift: 0, ms: 0 };
    const handles = new Map<string, BmcHandle | Error>();
    await mapLimit(targets, this.config.power.syncConcurrency, async (t) => {
      handles.set(t.id, await this.bmc.forServer(t.id).catch((err: Error) => err));
    });
    const readings = await this.readMany([...handles.values()].filter((h): h is BmcHandle => !(h instanceof Error)));
    await mapLimit(targets, this.config.power.syncConcurrency, (t) => this.one(t, handles.get(t.id)!, readings.get(t.id), summary));
    summary.ms = Date.now() - started;
    this.duration.observe(summary.ms / 1000);
    this.log[summary.changed || summary.unreachable || summary.drift ? 'info' : 'debug']({ ...summary }, 'power-state sync done');
    return summary;
  }

  /** Asks every driver that can read many BMCs at once (ipmipower for IPMI); the rest stay unread. */
  private async readMany(handles: BmcHandle[]): Promise<Map<string, PowerState | BmcError>> {
    const readings = new Map<string, PowerState | BmcError>();
    const byDriver = new Map<BmcDriver, BmcHandle[]>();
    for (const h of handles) {
      if (!h.driver.powerStatusMany) continue;
      const list = byDriver.get(h.driver) ?? [];
      byDriver.set(h.driver, list);
      list.push(h);
    }
    for (const [driver, list] of byDriver) {
      try {
        for (const [id, r] of await driver.powerStatusMany!(list.map((h) => h.target))) readings.set(id, r);
      } catch (err) {
        // The bulk reader itself failed (ipmipower missing, say): each BMC is asked on its own.
        this.log.warn({ driver: driver.name, err: (err as Error).message }, 'bulk power read failed; asking each BMC on its own');
      }
    }
    return readings;
  }

  private async one(t: SyncTarget, handle: BmcHandle | Error, reading: PowerState | BmcError | undefined, summary: PowerSyncSummary): Promise<void> {
    let state: 'on' | 'off';
    try {
      if (handle instanceof Error) throw handle;
      if (reading instanceof Error) throw bmcDomainError(reading, t.name);
      state =
        reading ??
        (await withDeadline(
          onBmc(handle, ({ driver, target }) => driver.powerStatus(target)),
          this.deadlineMs(),
          () => new Error(`no answer within ${this.deadlineMs() / 1000} s`),
        ));
    } catch (err) {
      summary.unreachable++;
      const error = (err as Error).message;
      const wasReachable = await this.status.recordUnreachable(t.id, error);
      if (wasReachable !== false) await this.status.addEvent(t.id, { kind: 'unreachable', actor: ACTOR, note: error });
      return;
    }
    summary[state]++;
    const drift = driftOf(t.lifecycle, state);
    if (drift) summary.drift++;
    const before = await this.status.recordPower(t.id, state, drift);
    if (before?.reachable === false) await this.status.addEvent(t.id, { kind: 'recovered', to: state, actor: ACTOR });
    if (before?.power_state && before.power_state !== state) {
      summary.changed++;
      await this.status.addEvent(t.id, { kind: 'changed', from: before.power_state, to: state, actor: ACTOR, note: 'seen by the power-state sync' });
    }
    if (drift && drift !== before?.drift) {
      await this.status.addEvent(t.id, { kind: 'drift', to: state, actor: ACTOR, note: drift });
      this.log.warn({ serverId: t.id, server: t.name, drift }, 'server power drifted from its lifecycle state');
    }
  }

  /** Runs the sync every `power.syncInterval` seconds (roles all and agent). */
  start(siteIds?: string[]): void {
    const every = this.config.power.syncInterval;
    if (!every) return;
    const tick = () => void this.sync({ siteIds }).catch((err: Error) => this.log.error({ err: err.message }, 'power-state sync failed'));
    this.schedules.addInterval('power-sync', setInterval(tick, every * 1000));
    setTimeout(tick, 1000).unref();
  }
}
