import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { run, type Runner } from 'graphile-worker';
import type { Logger } from 'pino';
import { JobRegistry, TaskWaiting, type TaskDefinition } from './job-registry';
import { JobRepository, type JobRow, type TaskRow } from './job.repository';
import { JOB_TASK, JobQueue, quietLogger } from './job-queue';
import { Database } from '../database/database';

export interface RunnerOptions {
  /** Sites whose jobs this worker runs; undefined = every site (role all). */
  siteCodes?: string[];
  allSiteCodes: () => Promise<string[]>;
  concurrency?: number;
  heartbeatMs?: number;
  /** A running task without a heartbeat for this long belongs to a dead worker. */
  staleAfterSeconds?: number;
}

class TaskTimeout extends Error {}
class WorkerStopping extends Error {}

const DEFAULTS = { maxAttempts: 3, timeoutMs: 60_000, backoffMs: 1_000 };

/**
 * Runs jobs: takes a job's next task, runs it with its timeout while sending heartbeats, records
 * the outcome, retries with backoff, and moves on to the next task. A worker that dies mid-task
 * stops its heartbeats; any other worker (or the same one restarted) then finds the task, puts it
 * back to pending and carries on. Cancel is cooperative: the task's signal is aborted and the job
 * ends as cancelled once the task returns.
 */
export class JobRunner {
  readonly workerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private runner?: Runner;
  private reaper?: NodeJS.Timeout;
  private readonly heartbeatMs: number;
  private stopping = false;
  private readonly running = new Set<AbortController>();
  private readonly staleAfter: number;

  constructor(
    private readonly db: Database,
    private readonly jobs: JobRepository,
    private readonly registry: JobRegistry,
    private readonly queue: JobQueue,
    private readonly log: Logger,
    private readonly opts: RunnerOptions,
  ) {
    this.heartbeatMs = opts.heartbeatMs ?? 2_000;
    this.staleAfter = opts.staleAfterSeconds ?? 15;
  }

  async start(): Promise<void> {
    const mine = this.opts.siteCodes;
    this.runner = await run({
      connectionString: this.queue.connectionString,
      concurrency: this.opts.concurrency ?? 4,
      noHandleSignals: true,
      pollInterval: 1000,
      // No cron: graphile-worker would otherwise read a file named "crontab" in the working directory.
      crontab: '',
      logger: quietLogger(this.log),
      // An agent serves its own sites: every other site's flag is forbidden.
      forbiddenFlags: mine ? async () => (await this.opts.allSiteCodes()).filter((c) => !mine.includes(c)).map((c) => `site:${c}`) : null,
      // Tasks, their heartbeats and the reaper use the background pool: API load never starves them.
      taskList: { [JOB_TASK]: (payload) => this.db.background(() => this.work((payload as { jobId: string }).jobId)) },
    });
    this.reaper = setInterval(() => void this.db.background(() => this.reclaim()).catch((err) => this.log.error({ err }, 'job reaper failed')), Math.max(1000, (this.staleAfter * 1000) / 3));
    this.reaper.unref();
    this.log.info({ worker: this.workerId, sites: mine ?? 'all' }, 'job worker started');
  }

  /**
   * Stop taking work; tasks in progress are asked to stop and handed back (pending, woken) so
   * another worker, or this one restarted, carries on at once instead of after the heartbeat timeout.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.reaper) clearInterval(this.reaper);
    for (const c of this.running) c.abort(new WorkerStopping('the worker is stopping'));
    await this.runner?.stop();
    this.runner = undefined;
  }

  /** Tasks of dead workers go back to pending, and their jobs are woken. */
  async reclaim(): Promise<number> {
    const lost = await this.jobs.reclaimAbandoned(this.staleAfter);
    for (const t of lost) {
      const job = await this.jobs.job(t.job_id);
      if (!job) continue;
      await this.jobs.log(t.job_id, t.seq, 'warn', `task ${t.seq} was running on a worker that stopped answering; resuming it`);
      await this.queue.wake(job.id, job.site_code);
    }
    return lost.length;
  }

  /** Run the job's tasks in order until it ends or must wait (a retry later). */
  private async work(jobId: string): Promise<void> {
    for (;;) {
      if (this.stopping) return;
      const job = await this.jobs.job(jobId);
      if (!job || job.state === 'succeeded' || job.state === 'failed' || job.state === 'cancelled' || job.waits_for) return;
      const def = this.registry.get(job.kind);
      if (!def) {
        await this.finish(job, 'failed', `no worker knows job kind ${job.kind}`);
        return;
      }
      if (job.cancel_requested_at) {
        await this.finish(job, 'cancelled', null);
        return;
      }
      const task = await this.jobs.claimNext(jobId, this.workerId);
      if (!task) {
        if ((await this.jobs.tasks(jobId)).every((t) => t.state === 'succeeded')) {
          await this.finish(job, 'succeeded', null);
          return;
        }
        // Not due yet (a retry's backoff) or another worker has it: come back when due.
        const due = await this.jobs.nextDue(jobId);
        if (due) await this.queue.wake(jobId, job.site_code, due);
        return;
      }
      if (job.state === 'queued') await this.jobs.markJobRunning(jobId);
      const done = await this.runTask(job, task, def.tasks[task.seq]);
      if (!done) return;
    }
  }

  /** True to go on with the next task; false when the job ended or waits. */
  private async runTask(job: JobRow, task: TaskRow, def: TaskDefinition): Promise<boolean> {
    const controller = new AbortController();
    this.running.add(controller);
    const log = (message: string, level: 'info' | 'warn' | 'error' = 'info') => this.jobs.log(job.id, task.seq, level, message);
    // Written while the task starts, not before it: no round trip between claim and start. A
    // waiting task's checks are not logged (one every few seconds for an hour would bury the log).
    const started = task.waits ? Promise.resolve() : log(`${task.name}: attempt ${task.attempts} of ${task.max_attempts} on ${this.workerId}`);
    let cancelSeen = false;
    const beat = setInterval(() => {
      void this.jobs.heartbeat(job.id, task.seq, this.workerId).then(
        (r) => {
          if (r.cancel && !cancelSeen) {
            cancelSeen = true;
            controller.abort(new Error('job cancelled'));
          }
        },
        () => undefined,
      );
    }, this.heartbeatMs);
    let timer: NodeJS.Timeout | undefined;
    const stopped = new Promise<never>((_, reject) => controller.signal.addEventListener('abort', () => reject(controller.signal.reason)));
    stopped.catch(() => undefined);
    try {
      await Promise.race([
        stopped,
        def.run({ jobId: job.id, params: job.params, serverId: job.server_id, attempt: task.attempts, waits: task.waits, firstStartedAt: task.started_at ?? new Date(), signal: controller.signal, log }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            controller.abort(new TaskTimeout(`timed out after ${task.timeout_ms} ms`));
            reject(new TaskTimeout(`timed out after ${task.timeout_ms} ms`));
          }, task.timeout_ms);
        }),
      ]);
      await started;
      if (!(await this.jobs.taskSucceeded(job.id, task.seq, this.workerId))) return false; // reclaimed meanwhile
      await log(`${task.name}: done`);
      return true;
    } catch (err) {
      await started.catch(() => undefined);
      if (err instanceof TaskWaiting && !controller.signal.aborted) {
        const at = new Date(Date.now() + err.retryInMs);
        await this.jobs.taskWait(job.id, task.seq, this.workerId, at);
        await this.queue.wake(job.id, job.site_code, at);
        return false;
      }
      const message = (err as Error).message || String(err);
      if (err instanceof WorkerStopping || controller.signal.reason instanceof WorkerStopping) {
        await this.jobs.release(job.id, task.seq, this.workerId);
        await log(`${task.name}: handed back, the worker is stopping`, 'warn');
        await this.queue.wake(job.id, job.site_code);
        return false;
      }
      const fresh = await this.jobs.job(job.id);
      if (fresh?.cancel_requested_at) {
        await log(`${task.name}: stopped for the cancel (${message})`, 'warn');
        await this.finish(fresh, 'cancelled', null);
        return false;
      }
      if (task.attempts < task.max_attempts) {
        const backoff = (def.backoffMs ?? DEFAULTS.backoffMs) * 2 ** (task.attempts - 1);
        const at = new Date(Date.now() + backoff);
        await this.jobs.taskRetry(job.id, task.seq, this.workerId, message, at);
        await log(`${task.name}: failed (${message}); retry in ${backoff} ms`, 'warn');
        await this.queue.wake(job.id, job.site_code, at);
        return false;
      }
      await this.jobs.taskFailed(job.id, task.seq, message);
      await log(`${task.name}: failed after ${task.attempts} attempts: ${message}`, 'error');
      await this.finish(job, 'failed', `${task.name} failed after ${task.attempts} attempts: ${message}`);
      return false;
    } finally {
      this.running.delete(controller);
      clearInterval(beat);
      if (timer) clearTimeout(timer);
    }
  }

  private async finish(job: JobRow, state: 'succeeded' | 'failed' | 'cancelled', error: string | null): Promise<void> {
    const def = this.registry.get(job.kind);
    if (state !== 'succeeded' && def?.onEnd) {
      const log = (message: string, level: 'info' | 'warn' | 'error' = 'info') => this.jobs.log(job.id, null, level, message);
      try {
        await def.onEnd({ jobId: job.id, serverId: job.server_id, params: job.params, state, error, log });
      } catch (err) {
        await log(`clean-up after ${state} failed: ${(err as Error).message}`, 'error');
      }
    }
    // The final line commits with the final state: a stream that sees the job end has its last line too.
    const released = await this.db.transaction(async () => {
      const r = await this.jobs.finishJob(job.id, state, error);
      await this.jobs.log(job.id, null, state === 'succeeded' ? 'info' : state === 'cancelled' ? 'warn' : 'error', `job ${state}${error ? `: ${error}` : ''}`);
      return r;
    });
    for (const next of released) await this.queue.wake(next, job.site_code);
  }
}

export const TASK_DEFAULTS = DEFAULTS;
