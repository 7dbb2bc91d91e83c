import { Injectable, type OnModuleInit } from '@nestjs/common';
import { Gauge } from 'prom-client';
import { Database } from '../../database/database';
import { MetricsService } from './metrics.service';

/**
 * What an operator graphs and alerts on, read from the database when Prometheus scrapes: jobs
 * by kind and state, servers by lifecycle state, open work-queue tasks per site.
 */
@Injectable()
export class StateMetrics implements OnModuleInit {
  constructor(
    private readonly metrics: MetricsService,
    private readonly db: Database,
  ) {}

  onModuleInit(): void {
    const db = this.db;
    const registers = [this.metrics.registry];
    const gauge = (name: string, help: string, labelNames: string[], sql: string) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          this.reset();
          const rows: Record<string, string>[] = await db.dataSource.query(sql);
          for (const r of rows) this.set(Object.fromEntries(labelNames.map((l) => [l, r[l]])), Number(r.n));
        },
      });
    gauge('racksmith_jobs', 'Jobs by kind and state', ['kind', 'state'], 'SELECT kind, state, count(*) AS n FROM jobs GROUP BY kind, state');
    gauge('racksmith_servers', 'Rented servers by lifecycle state', ['state', 'maintenance'], "SELECT lifecycle AS state, maintenance::text AS maintenance, count(*) AS n FROM devices WHERE role = 'rented-server' GROUP BY 1, 2");
    gauge('racksmith_work_tasks_open', 'Work-queue tasks not done, per site and kind', ['site', 'kind'], "SELECT s.code AS site, w.kind, count(*) AS n FROM work_tasks w JOIN sites s ON s.id = w.site_id WHERE w.state IN ('open', 'claimed') GROUP BY 1, 2");
    gauge(
      'racksmith_bmcs',
      'BMCs by what the last power-state sync saw: on, off, unreachable, or unknown (never checked), and whether the server drifted from its expected state',
      ['site', 'state', 'drift'],
      "SELECT s.code AS site, CASE WHEN b.reachable IS FALSE THEN 'unreachable' ELSE coalesce(b.power_state, 'unknown') END AS state, (b.drift IS NOT NULL)::text AS drift, count(*) AS n FROM devices d JOIN sites s ON s.id = d.site_id LEFT JOIN bmc_status b ON b.device_id = d.id WHERE d.bmc_address IS NOT NULL GROUP BY 1, 2, 3",
    );
    gauge('racksmith_console_grants', 'IPKVM grants that still hold (or should lose) a BMC account, by state', ['state'], "SELECT state, count(*) AS n FROM console_grants WHERE state IN ('creating', 'active', 'revoke-pending') GROUP BY 1");
  }
}
