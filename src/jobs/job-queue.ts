import { Logger as GraphileLogger, makeWorkerUtils, runMigrations, type WorkerUtils } from 'graphile-worker';
import type { Logger } from 'pino';

export const JOB_TASK = 'racksmith_job';

/**
 * The wake-up queue: graphile-worker (SKIP LOCKED, LISTEN/NOTIFY). One queued entry per racksmith
 * job that has something to do, flagged with its site so agents of other sites leave it alone.
 * The job's own state lives in racksmith's tables; an entry only says "look at job X".
 */
export class JobQueue {
  private utils?: WorkerUtils;

  constructor(
    readonly connectionString: string,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const logger = quietLogger(this.log);
    await runMigrations({ connectionString: this.connectionString, logger });
    this.utils = await makeWorkerUtils({ connectionString: this.connectionString, logger });
  }

  /** Wake a worker for the job (now, or at `runAt`); replaces an earlier wake-up for it. */
  async wake(jobId: string, siteCode: string, runAt?: Date): Promise<void> {
    if (!this.utils) throw new Error('the job queue is not started');
    await this.utils.addJob(JOB_TASK, { jobId }, { jobKey: jobId, jobKeyMode: 'replace', runAt, flags: [`site:${siteCode}`], maxAttempts: 10 });
  }

  async stop(): Promise<void> {
    await this.utils?.release();
    this.utils = undefined;
  }
}

/** graphile-worker's own lines go through racksmith's logger: chatter at debug, problems as they are. */
export function quietLogger(log: Logger): GraphileLogger {
  return new GraphileLogger(() => (level: string, message: string, meta?: unknown) => {
    const fields = { component: 'graphile-worker', ...(meta as object) };
    if (level === 'error') log.error(fields, message);
    else if (level === 'warning') log.warn(fields, message);
    else log.debug(fields, message);
  });
}
