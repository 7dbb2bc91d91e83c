import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { Observable } from 'rxjs';
import type { Logger } from 'pino';
import { DATABASE_URL, LOGGER } from '../app.tokens';
import { AppConfig, type Config } from '../config/config';
import { PgListener } from '../database/pg-listener';
import { HealthService } from '../modules/health/health.service';
import { jobEvents, type JobEvent } from './job-events';
import { JobRepository } from './job.repository';

/** The notification channel the job tables' triggers send on (migration JobNotify). */
export const JOB_CHANNEL = 'racksmith_jobs';

/**
 * Job progress streams for the API (SSE): woken by PostgreSQL notifications on one LISTEN
 * connection per process (`RACKSMITH_JOB_EVENTS=notify`, the default), polling every 300 ms only
 * while that connection is down, or always (`poll`).
 */
@Injectable()
export class JobStreams implements OnModuleDestroy {
  private readonly listener: PgListener | null;

  constructor(
    private readonly repo: JobRepository,
    @Inject(DATABASE_URL) url: string,
    @Inject(AppConfig) config: Config,
    @Inject(LOGGER) log: Logger,
    health: HealthService,
  ) {
    this.listener = config.jobs.events === 'notify' ? new PgListener(url, JOB_CHANNEL, log, { connectTimeoutMs: config.database.connectTimeout * 1000 }) : null;
    health.register({
      name: 'jobEvents',
      critical: false,
      run: async () => {
        if (!this.listener) return { status: 'off', detail: 'RACKSMITH_JOB_EVENTS=poll: job streams poll every 300 ms' };
        return this.listener.listening ? { status: 'ok' } : { status: 'ok', detail: 'no LISTEN connection (none needed yet, or lost): job streams poll every 300 ms' };
      },
    });
  }

  /** A job's task transitions and log lines after `afterLogId`, ending with its final state. */
  events(jobId: string, afterLogId?: string): Observable<JobEvent> {
    return jobEvents(this.repo, jobId, { afterLogId, wakeups: this.listener ?? undefined });
  }

  async onModuleDestroy(): Promise<void> {
    await this.listener?.close();
  }
}
