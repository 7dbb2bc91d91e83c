import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { MessageEvent } from '@nestjs/common';
import { map, type Observable } from 'rxjs';
import type { Logger } from 'pino';
import { DATABASE_URL, LOGGER } from '../app.tokens';
import { AppConfig, type Config } from '../config/config';
import { PgListener } from '../database/pg-listener';
import { HealthService } from '../modules/health/health.service';
import { jobEvents, type JobEvent, type JobWakeups } from './job-events';
import { JobRepository, type JobProgress } from './job.repository';

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
  /**
   * Streams of one job woken by one notification read once: a read is shared by the streams that
   * ask for the same lines while the same `generation` lasts. Every notification and every new
   * stream starts a generation, so nobody joins a read begun before the line it was woken for.
   */
  private generation = 0;
  private readonly reads = new Map<string, Promise<JobProgress | null>>();
  private readonly shared = {
    progress: (jobId: string, after: string): Promise<JobProgress | null> => {
      const key = `${jobId}:${after}:${this.generation}`;
      let read = this.reads.get(key);
      if (!read) {
        read = this.repo.progress(jobId, after).finally(() => this.reads.delete(key));
        this.reads.set(key, read);
      }
      return read;
    },
  };
  private readonly wakeups: JobWakeups | undefined;

  constructor(
    private readonly repo: JobRepository,
    @Inject(DATABASE_URL) url: string,
    @Inject(AppConfig) config: Config,
    @Inject(LOGGER) log: Logger,
    health: HealthService,
  ) {
    this.listener = config.jobs.events === 'notify' ? new PgListener(url, JOB_CHANNEL, log, { connectTimeoutMs: config.database.connectTimeout * 1000 }) : null;
    const listener = this.listener;
    // One subscription per job, fanned out here: a notification starts one generation for all its streams.
    const byJob = new Map<string, { fns: Set<() => void>; off: () => void }>();
    this.wakeups = listener
      ? {
          get listening() {
            return listener.listening;
          },
          subscribe: (jobId, fn) => {
            this.generation++;
            let job = byJob.get(jobId);
            if (!job) {
              const fns = new Set<() => void>();
              const off = listener.subscribe(jobId, () => {
                this.generation++;
                for (const f of [...fns]) f();
              });
              byJob.set(jobId, (job = { fns, off }));
            }
            const mine = job;
            mine.fns.add(fn);
            return () => {
              mine.fns.delete(fn);
              if (mine.fns.size || byJob.get(jobId) !== mine) return;
              byJob.delete(jobId);
              mine.off();
            };
          },
        }
      : undefined;
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
    return jobEvents(this.shared, jobId, { afterLogId, wakeups: this.wakeups });
  }

  /** The same as SSE messages, resuming after a `Last-Event-ID` header (a log id; anything else starts over). */
  messages(jobId: string, lastEventId?: string): Observable<MessageEvent> {
    const after = lastEventId && /^\d+$/.test(lastEventId) ? lastEventId : undefined;
    return this.events(jobId, after).pipe(map((e) => ({ type: e.type, id: e.id, data: e.data })));
  }

  async onModuleDestroy(): Promise<void> {
    await this.listener?.close();
  }
}
