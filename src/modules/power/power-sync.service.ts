import { Inject, Injectable } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { Histogram } from 'prom-client';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { mapLimit, withDeadline } from '../../common/concurrency';
import type { BmcDriver, BmcError, BmcTarget, PowerState } from '../../drivers/bmc/bmc-driver';
import { BmcAccess, bmcDomainError } from '../bmc/bmc-access.service';
import { BmcStatusRepository, type SyncReading, type SyncTarget } from '../bmc/bmc-status.repository';
import { Database } from '../../database/database';
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
  /** Of `ms`, the time spent waiting for the BMCs (the rest is racksmith's own: reading, decrypting, recording). */
  bmcMs: number;
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
    private readonly db: Database,
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

  /**
   * One query reads every BMC with what reaching it needs; each password group is decrypted once;
   * the bulk readers ask their BMCs (ipmipower); the rest are asked one by one at the configured
   * concurrency; all states are written in one statement and the events in another.
   */
  private async run(filter: { siteIds?: string[]; ids?: string[] }): Promise<PowerSyncSummary> {
    const started = Date.now();
    const rows = await this.status.syncTargets(filter);
    const targets = rows.filter((r) => !r.why);
    const skipped = filter.ids ? [] : rows.filter((r) => r.why).map((r) => ({ id: r.id, name: r.name, address: r.address, why: r.why! }));
    if (!filter.ids) this.noteSkipped(skipped);
    const summary: PowerSyncSummary = { checked: targets.length, on: 0, off: 0, unreachable: 0, changed: 0, drift: 0, skipped: skipped.length, ms: 0, bmcMs: 0 };
    const handles = this.bmc.targets(targets);
    const asked = Date.now();
    const readings = await this.readMany(handles);
    const results = new Map<string, PowerState | Error>();
    await mapLimit(targets, this.config.power.syncConcurrency, async (t) => {
      const h = handles.get(t.id)!;
      const reading = readings.get(t.id);
      try {
        if (h instanceof Error) throw h;
        if (reading instanceof Error) throw reading;
        results.set(
          t.id,
          reading ?? (await withDeadline(h.driver.powerStatus(h.target), this.deadlineMs(), () => new Error(`no answer within ${this.deadlineMs() / 1000} s`))),
        );
      } catch (err) {
        results.set(t.id, bmcDomainError(err, t.name) as Error);
      }
    });
    summary.bmcMs = Date.now() - asked;
    await this.record(targets, results, summary);
    summary.ms = Date.now() - started;
    this.duration.observe(summary.ms / 1000);
    this.log[summary.changed || summary.unreachable || summary.drift ? 'info' : 'debug']({ ...summary }, 'power-state sync done');
    return summary;
  }

  /** Asks every driver that can read many BMCs at once (ipmipower for IPMI); the rest stay unread. */
  private async readMany(handles: Map<string, { driver: BmcDriver; target: BmcTarget } | Error>): Promise<Map<string, PowerState | BmcError>> {
    const readings = new Map<string, PowerState | BmcError>();
    const byDriver = new Map<BmcDriver, BmcTarget[]>();
    for (const h of handles.values()) {
      if (h instanceof Error || !h.driver.powerStatusMany) continue;
      const list = byDriver.get(h.driver) ?? [];
      byDriver.set(h.driver, list);
      list.push(h.target);
    }
    for (const [driver, list] of byDriver) {
      try {
        for (const [id, r] of await driver.powerStatusMany!(list)) readings.set(id, r);
      } catch (err) {
        // The bulk reader itself failed (ipmipower missing, say): each BMC is asked on its own.
        this.log.warn({ driver: driver.name, err: (err as Error).message }, 'bulk power read failed; asking each BMC on its own');
      }
    }
    return readings;
  }

  /** Writes every reading at once, then the events of what changed, in one transaction. */
  private async record(targets: SyncTarget[], results: Map<string, PowerState | Error>, summary: PowerSyncSummary): Promise<void> {
    const byId = new Map(targets.map((t) => [t.id, t]));
    const input: SyncReading[] = targets.map((t) => {
      const r = results.get(t.id)!;
      return r instanceof Error ? { deviceId: t.id, state: null, drift: null, error: r.message } : { deviceId: t.id, state: r, drift: driftOf(t.lifecycle, r), error: null };
    });
    const events: Parameters<BmcStatusRepository['addEvents']>[0] = [];
    const ok: string[] = [];
    const failed: string[] = [];
    await this.db.transaction(async () => {
      const before = new Map((await this.status.recordMany(input)).map((b) => [b.device_id, b]));
      for (const r of input) {
        const t = byId.get(r.deviceId)!;
        const b = before.get(r.deviceId);
        if (r.error !== null) {
          summary.unreachable++;
          if (!t.checked) {
            failed.push(t.id);
            this.log.warn({ serverId: t.id, server: t.name, err: r.error }, 'BMC never answered with its credentials: left out of the power-state sync until they change');
          }
          if (b?.reachable !== false) events.push({ deviceId: t.id, kind: 'unreachable', actor: ACTOR, note: r.error });
          continue;
        }
        const state = r.state!;
        summary[state]++;
        if (!t.checked) ok.push(t.id);
        if (r.drift) summary.drift++;
        if (b?.reachable === false) events.push({ deviceId: t.id, kind: 'recovered', to: state, actor: ACTOR });
        if (b?.power_state && b.power_state !== state) {
          summary.changed++;
          events.push({ deviceId: t.id, kind: 'changed', from: b.power_state, to: state, actor: ACTOR, note: 'seen by the power-state sync' });
        }
        if (r.drift && r.drift !== b?.drift) {
          events.push({ deviceId: t.id, kind: 'drift', to: state, actor: ACTOR, note: r.drift });
          this.log.warn({ serverId: t.id, server: t.name, drift: r.drift }, 'server power drifted from its lifecycle state');
        }
      }
      await this.status.addEvents(events);
      await this.status.markManyChecked(ok, failed);
    });
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
