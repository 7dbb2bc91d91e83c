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
import { HealthService } from '../health/health.service';
import { driftOf } from './server-power.service';

export interface PowerSyncSummary {
  checked: number;
  on: number;
  off: number;
  unreachable: number;
  changed: number;
  drift: number;
  /** BMCs left out: no password set, or they never answered with their current credentials. */
  skipped: number;
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
  private skipped: { name: string; why: string }[] = [];
  private ran = false;
  private readonly named = new Set<string>();
  private readonly duration: Histogram;

  constructor(
    private readonly bmc: BmcAccess,
    private readonly status: BmcStatusRepository,
    private readonly schedules: SchedulerRegistry,
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
    metrics: MetricsService,
    health: HealthService,
  ) {
    health.register({
      name: 'powerSync',
      critical: false,
      run: async () => {
        if (!this.ran) return { status: 'off', detail: this.config.power.syncInterval ? 'no sync has run in this process yet' : 'RACKSMITH_POWER_SYNC_INTERVAL=0' };
        const left = this.skipped;
        if (!left.length) return { status: 'ok' };
        const shown = left.slice(0, 10).map((s) => `${s.name}: ${s.why}`).join(', ');
        return { status: 'ok', detail: `leaves out ${left.length} BMC(s) nobody checked: ${shown}${left.length > 10 ? ', …' : ''}` };
      },
    });
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
    const skipped = filter.ids ? [] : await this.status.unsynced(filter);
    if (!filter.ids) this.noteSkipped(skipped);
    const summary: PowerSyncSummary = { checked: targets.length, on: 0, off: 0, unreachable: 0, changed: 0, drift: 0, skipped: skipped.length, ms: 0 };
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
      if (!t.checked) {
        await this.status.markCheckFailed(t.id);
        this.log.warn({ serverId: t.id, server: t.name, err: error }, 'BMC never answered with its credentials: left out of the power-state sync until they change');
      }
      const wasReachable = await this.status.recordUnreachable(t.id, error);
      if (wasReachable !== false) await this.status.addEvent(t.id, { kind: 'unreachable', actor: ACTOR, note: error });
      return;
    }
    summary[state]++;
    if (!t.checked) await this.status.markChecked(t.id);
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

  /** BMCs left out of the sync are named once each (in the log) while this process runs, and on /health. */
  private noteSkipped(skipped: { id: string; name: string; address: string; why: string }[]): void {
    this.ran = true;
    this.skipped = skipped;
    const fresh = skipped.filter((s) => !this.named.has(`${s.id}:${s.why}`));
    for (const s of fresh) this.named.add(`${s.id}:${s.why}`);
    if (fresh.length) this.log.warn({ bmcs: fresh.map((s) => `${s.name} (${s.address}): ${s.why}`) }, `power-state sync leaves out ${fresh.length} BMC(s) nobody checked: set their credentials (a BMC that never answered is tried again when they change)`);
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
