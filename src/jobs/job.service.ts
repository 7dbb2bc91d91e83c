import { Injectable } from '@nestjs/common';
import { Database } from '../database/database';
import { ConflictError, NotFoundError, ValidationError } from '../common/errors';
import { newestFirstPage, type Page } from '../common/pagination';
import { requestContext } from '../common/request-context';
import { AuditService } from '../modules/audit/audit.service';
import { JobRegistry } from './job-registry';
import { JobRepository, type JobRow, type LogRow, type TaskRow } from './job.repository';
import { JobQueue } from './job-queue';
import { TASK_DEFAULTS } from './job-runner';

export interface JobView {
  id: string;
  kind: string;
  state: string;
  siteId: string;
  site: string;
  serverId: string | null;
  waitsFor: string | null;
  error: string | null;
  cancelRequested: boolean;
  createdBy: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  tasks?: { seq: number; name: string; state: string; attempts: number; maxAttempts: number; startedAt: string | null; finishedAt: string | null; error: string | null }[];
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

export function jobView(j: JobRow, tasks?: TaskRow[]): JobView {
  return {
    id: j.id,
    kind: j.kind,
    state: j.state,
    siteId: j.site_id,
    site: j.site_code,
    serverId: j.server_id,
    waitsFor: j.waits_for,
    error: j.error,
    cancelRequested: j.cancel_requested_at !== null,
    createdBy: j.created_by,
    createdAt: j.created_at.toISOString(),
    startedAt: iso(j.started_at),
    finishedAt: iso(j.finished_at),
    ...(tasks
      ? { tasks: tasks.map((t) => ({ seq: t.seq, name: t.name, state: t.state, attempts: t.attempts, maxAttempts: t.max_attempts, startedAt: iso(t.started_at), finishedAt: iso(t.finished_at), error: t.error })) }
      : {}),
  };
}

/** Creating, reading, cancelling and retrying jobs; the JobRunner does the work. */
@Injectable()
export class JobService {
  constructor(
    private readonly jobs: JobRepository,
    private readonly registry: JobRegistry,
    private readonly queue: JobQueue,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  /**
   * A new job. A hardware job for a server that already has one is refused (409 naming it), or,
   * with `queue: true`, waits behind the last one.
   */
  async create(kind: string, target: { siteId: string; siteCode: string; serverId?: string }, params: Record<string, unknown>, opts: { queue?: boolean } = {}): Promise<JobView> {
    const def = this.registry.get(kind);
    if (!def) throw new ValidationError(`unknown job kind ${kind}; known: ${this.registry.names().join(', ')}`, 'kind');
    const insert = async () => {
      let waitsFor: string | null = null;
      if (def.hardware && target.serverId) {
        const busy = await this.jobs.lastActiveForServer(target.serverId);
        if (busy && !opts.queue) {
          const holder = (await this.jobs.holderOfServer(target.serverId)) ?? busy;
          throw new ConflictError('server_busy', `the server is busy with job ${holder.id} (${holder.kind}, ${holder.state}); ask to queue behind it, or cancel it`, { jobId: holder.id, kind: holder.kind, state: holder.state });
        }
        waitsFor = busy?.id ?? null;
      }
      const created = await this.jobs.insertJob(
        { kind, siteId: target.siteId, siteCode: target.siteCode, serverId: target.serverId ?? null, waitsFor, params, createdBy: requestContext.actorName() },
        def.tasks.map((t) => ({ name: t.name, maxAttempts: t.maxAttempts ?? TASK_DEFAULTS.maxAttempts, timeoutMs: t.timeoutMs ?? TASK_DEFAULTS.timeoutMs })),
      );
      await this.audit.record({ action: 'job.create', targetType: 'job', targetId: created.job.id, changes: { kind, serverId: target.serverId, waitsFor } });
      // The wake-up is queued in the same transaction: a worker never looks for a job that is
      // not committed yet (a caller's outer transaction may commit much later), nor misses one.
      if (!waitsFor) await this.jobs.wakeInTransaction(created.job.id, target.siteCode);
      return created;
    };
    // Jobs for one server are created one after another (the unique index is the backstop).
    const { job, tasks } = def.hardware && target.serverId ? await this.db.withLock(`racksmith:server-jobs:${target.serverId}`, insert) : await this.db.transaction(insert);
    return jobView(job, tasks);
  }

  async get(id: string): Promise<JobView> {
    const job = await this.jobs.job(id);
    if (!job) throw new NotFoundError('job', id);
    return jobView(job, await this.jobs.tasks(id));
  }

  list(f: { serverId?: string; state?: string; siteId?: string; kind?: string }, limit: number, cursor?: string): Promise<Page<JobView>> {
    return newestFirstPage(cursor, limit, (n, before) => this.jobs.list(f, n, before), (j) => ({ at: j.created_at, id: j.id }), (j) => jobView(j));
  }

  logs(id: string, afterId?: string): Promise<LogRow[]> {
    return this.jobs.logs(id, afterId);
  }

  /** A job's log lines as the API shows them (404 for an unknown job). */
  async logLines(id: string, afterId?: string) {
    await this.get(id);
    return (await this.jobs.logs(id, afterId)).map((l) => ({ id: l.id, seq: l.seq, at: l.at.toISOString(), level: l.level, message: l.message }));
  }

  /** Ask the job to stop: a queued job ends at once, a running one after its current task. */
  async cancel(id: string): Promise<JobView> {
    const job = await this.jobs.job(id);
    if (!job) throw new NotFoundError('job', id);
    if (job.state !== 'queued' && job.state !== 'running') throw new ConflictError('job_finished', `job ${id} is already ${job.state}`, { state: job.state });
    await this.jobs.requestCancel(id);
    await this.audit.record({ action: 'job.cancel', targetType: 'job', targetId: id });
    await this.queue.wake(id, job.site_code);
    return this.get(id);
  }

  /** Run a failed or cancelled job again from the task that did not finish. */
  async retry(id: string): Promise<JobView> {
    const job = await this.jobs.job(id);
    if (!job) throw new NotFoundError('job', id);
    if (job.state !== 'failed' && job.state !== 'cancelled') throw new ConflictError('job_not_failed', `job ${id} is ${job.state}; only a failed or cancelled job is retried`, { state: job.state });
    await this.db.transaction(async () => {
      if (job.server_id) {
        const holder = await this.jobs.holderOfServer(job.server_id);
        if (holder) throw new ConflictError('server_busy', `the server is busy with job ${holder.id}`, { jobId: holder.id });
      }
      // From the first unfinished task, or from the earlier one it names (retryFrom).
      const def = this.registry.get(job.kind);
      const tasks = await this.jobs.tasks(id);
      const first = tasks.find((t) => t.state !== 'succeeded') ?? tasks[tasks.length - 1];
      const back = def?.tasks[first.seq]?.retryFrom;
      const from = back ? (tasks.find((t) => t.name === back)?.seq ?? first.seq) : first.seq;
      await def?.onRetry?.({ jobId: id, serverId: job.server_id, params: job.params });
      await this.jobs.reopen(id, from);
      await this.audit.record({ action: 'job.retry', targetType: 'job', targetId: id, changes: { fromTask: tasks[from].name } });
    });
    await this.queue.wake(id, job.site_code);
    return this.get(id);
  }
}
