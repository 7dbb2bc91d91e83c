import { Injectable } from '@nestjs/common';
import { Database } from '../database/database';
import { JOB_TASK } from './job-queue';

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface JobRow {
  id: string;
  kind: string;
  site_id: string;
  site_code: string;
  server_id: string | null;
  state: JobState;
  waits_for: string | null;
  params: Record<string, unknown>;
  error: string | null;
  cancel_requested_at: Date | null;
  created_by: string;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

export interface TaskRow {
  job_id: string;
  seq: number;
  name: string;
  state: 'pending' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'cancelled';
  attempts: number;
  /** Checks of a waiting task so far (not attempts). */
  waits: number;
  max_attempts: number;
  timeout_ms: number;
  worker: string | null;
  started_at: Date | null;
  finished_at: Date | null;
  next_attempt_at: Date | null;
  error: string | null;
}

export interface LogRow {
  id: string;
  job_id: string;
  seq: number | null;
  at: Date;
  level: string;
  message: string;
}

export interface JobProgress {
  state: JobState;
  error: string | null;
  tasks: Pick<TaskRow, 'seq' | 'name' | 'state' | 'attempts' | 'error'>[];
  logs: LogRow[];
}

const JOB = 'SELECT j.*, s.code AS site_code FROM jobs j JOIN sites s ON s.id = j.site_id';

/** Jobs, their tasks and logs: plain SQL, each statement a single step of the state machine. */
@Injectable()
export class JobRepository {
  constructor(private readonly db: Database) {}

  /** Rows of a statement (TypeORM answers UPDATE … RETURNING with [rows, count]). */
  private q<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return this.db.rows<T>(sql, params);
  }

  /** The job and its tasks, in two statements; returns both rows as stored. */
  /**
   * Queue the wake-up for a job (graphile-worker's add_job, as JobQueue.wake does) in the
   * transaction in progress, so it exists exactly when the job does.
   */
  async wakeInTransaction(jobId: string, siteCode: string): Promise<void> {
    await this.db.rows(
      `SELECT graphile_worker.add_job(identifier => $1::text, payload => $2::json, job_key => $3::text, job_key_mode => 'replace', flags => $4::text[], max_attempts => 10)`,
      [JOB_TASK, JSON.stringify({ jobId }), jobId, [`site:${siteCode}`]],
    );
  }

  async insertJob(
    j: { kind: string; siteId: string; siteCode: string; serverId: string | null; waitsFor: string | null; params: Record<string, unknown>; createdBy: string },
    tasks: { name: string; maxAttempts: number; timeoutMs: number }[],
  ): Promise<{ job: JobRow; tasks: TaskRow[] }> {
    const [job] = await this.q<JobRow>(
      'INSERT INTO jobs (kind, site_id, server_id, waits_for, params, created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *',
      [j.kind, j.siteId, j.serverId, j.waitsFor, j.params, j.createdBy],
    );
    const values = tasks.map((_, i) => `($1, $${i * 4 + 2}, $${i * 4 + 3}, $${i * 4 + 4}, $${i * 4 + 5})`).join(', ');
    const rows = await this.q<TaskRow>(
      `INSERT INTO job_tasks (job_id, seq, name, max_attempts, timeout_ms) VALUES ${values} RETURNING *`,
      [job.id, ...tasks.flatMap((t, seq) => [seq, t.name, t.maxAttempts, t.timeoutMs])],
    );
    return { job: { ...job, site_code: j.siteCode }, tasks: rows.sort((a, b) => a.seq - b.seq) };
  }

  async job(id: string): Promise<JobRow | null> {
    return (await this.q<JobRow>(`${JOB} WHERE j.id = $1`, [id]))[0] ?? null;
  }

  tasks(jobId: string): Promise<TaskRow[]> {
    return this.q<TaskRow>('SELECT * FROM job_tasks WHERE job_id = $1 ORDER BY seq', [jobId]);
  }

  /**
   * What a progress stream needs in one round trip: the job's state, every task's state and the
   * log lines after `afterLogId` (at most 1,000). Null: no such job.
   */
  async progress(jobId: string, afterLogId: string): Promise<JobProgress | null> {
    const rows = await this.q<{ state: JobState; error: string | null; tasks: JobProgress['tasks']; logs: (Omit<LogRow, 'job_id' | 'at' | 'id'> & { id: string | number; at: string })[] }>(
      `SELECT j.state, j.error,
         (SELECT coalesce(json_agg(json_build_object('seq', t.seq, 'name', t.name, 'state', t.state, 'attempts', t.attempts, 'error', t.error) ORDER BY t.seq), '[]')
            FROM job_tasks t WHERE t.job_id = j.id) AS tasks,
         (SELECT coalesce(json_agg(l ORDER BY l.id), '[]')
            FROM (SELECT id, seq, level, message, at FROM job_logs WHERE job_id = j.id AND id > $2 ORDER BY id LIMIT 1000) l) AS logs
       FROM jobs j WHERE j.id = $1`,
      [jobId, afterLogId],
    );
    const r = rows[0];
    if (!r) return null;
    return { state: r.state, error: r.error, tasks: r.tasks, logs: r.logs.map((l) => ({ id: String(l.id), job_id: jobId, seq: l.seq, level: l.level, message: l.message, at: new Date(l.at) })) };
  }

  list(f: { serverId?: string; state?: string; siteId?: string; kind?: string }, limit: number, before?: { at: string; id: string }): Promise<JobRow[]> {
    return this.q<JobRow>(
      `${JOB} WHERE ($1::uuid IS NULL OR j.server_id = $1) AND ($2::text IS NULL OR j.state = $2) AND ($3::uuid IS NULL OR j.site_id = $3)
         AND ($4::text IS NULL OR j.kind = $4) AND ($5::timestamptz IS NULL OR (j.created_at, j.id) < ($5, $6::uuid))
       ORDER BY j.created_at DESC, j.id DESC LIMIT $7`,
      [f.serverId ?? null, f.state ?? null, f.siteId ?? null, f.kind ?? null, before?.at ?? null, before?.id ?? null, limit],
    );
  }

  /** The job that holds the server now, or the last one queued behind it (to queue after). */
  async lastActiveForServer(serverId: string): Promise<JobRow | null> {
    return (await this.q<JobRow>(`${JOB} WHERE j.server_id = $1 AND j.state IN ('queued', 'running') ORDER BY j.created_at DESC LIMIT 1`, [serverId]))[0] ?? null;
  }

  async holderOfServer(serverId: string): Promise<JobRow | null> {
    return (await this.q<JobRow>(`${JOB} WHERE j.server_id = $1 AND j.state IN ('queued', 'running') AND j.waits_for IS NULL`, [serverId]))[0] ?? null;
  }

  /**
   * Take the job's next task for this worker: the first one not succeeded, if it is pending and
   * due. One statement, so two workers never run the same task.
   */
  async claimNext(jobId: string, worker: string): Promise<TaskRow | null> {
    const rows = await this.q<TaskRow>(
      `UPDATE job_tasks t SET state = 'running', attempts = attempts + CASE WHEN t.state = 'waiting' THEN 0 ELSE 1 END, worker = $2, heartbeat_at = now(), started_at = coalesce(started_at, now()), error = NULL
        WHERE t.job_id = $1 AND t.state IN ('pending', 'waiting') AND (t.next_attempt_at IS NULL OR t.next_attempt_at <= now())
          AND t.seq = (SELECT min(seq) FROM job_tasks WHERE job_id = $1 AND state <> 'succeeded')
        RETURNING t.*`,
      [jobId, worker],
    );
    return rows[0] ?? null;
  }

  /** The next task that is pending but not yet due: when to come back. */
  async nextDue(jobId: string): Promise<Date | null> {
    const rows = await this.q<{ at: Date | null }>(
      "SELECT next_attempt_at AS at FROM job_tasks WHERE job_id = $1 AND state IN ('pending', 'waiting') AND seq = (SELECT min(seq) FROM job_tasks WHERE job_id = $1 AND state <> 'succeeded')",
      [jobId],
    );
    return rows[0]?.at ?? null;
  }

  async markJobRunning(jobId: string): Promise<void> {
    await this.q("UPDATE jobs SET state = 'running', started_at = coalesce(started_at, now()) WHERE id = $1 AND state = 'queued'", [jobId]);
  }

  async taskSucceeded(jobId: string, seq: number, worker: string): Promise<boolean> {
    const rows = await this.q("UPDATE job_tasks SET state = 'succeeded', finished_at = now(), error = NULL WHERE job_id = $1 AND seq = $2 AND state = 'running' AND worker = $3 RETURNING seq", [jobId, seq, worker]);
    return rows.length > 0;
  }

  async taskRetry(jobId: string, seq: number, worker: string, error: string, at: Date): Promise<void> {
    await this.q("UPDATE job_tasks SET state = 'pending', error = $4, next_attempt_at = $5, worker = NULL WHERE job_id = $1 AND seq = $2 AND state = 'running' AND worker = $3", [jobId, seq, worker, error, at]);
  }

  /** The task waits for something outside: no worker holds it; it is looked at again at `at` (or when woken). */
  async taskWait(jobId: string, seq: number, worker: string, at: Date): Promise<void> {
    await this.q(
      "UPDATE job_tasks SET state = 'waiting', waits = waits + 1, next_attempt_at = $4 WHERE job_id = $1 AND seq = $2 AND state = 'running' AND worker = $3",
      [jobId, seq, worker, at],
    );
  }

  /** Give a running task back untouched (the worker is stopping): pending, this attempt not counted. */
  async release(jobId: string, seq: number, worker: string): Promise<void> {
    await this.q("UPDATE job_tasks SET state = 'pending', attempts = greatest(attempts - 1, 0), worker = NULL WHERE job_id = $1 AND seq = $2 AND state = 'running' AND worker = $3", [jobId, seq, worker]);
  }

  async taskFailed(jobId: string, seq: number, error: string): Promise<void> {
    await this.q("UPDATE job_tasks SET state = 'failed', error = $3, finished_at = now() WHERE job_id = $1 AND seq = $2", [jobId, seq, error]);
  }

  /** End a job; its remaining tasks are cancelled when it did not succeed. Returns the jobs waiting behind it, now released. */
  async finishJob(jobId: string, state: 'succeeded' | 'failed' | 'cancelled', error: string | null): Promise<string[]> {
    await this.q("UPDATE jobs SET state = $2, error = $3, finished_at = now() WHERE id = $1 AND state IN ('queued', 'running')", [jobId, state, error]);
    if (state !== 'succeeded') await this.q("UPDATE job_tasks SET state = 'cancelled', finished_at = now(), worker = NULL WHERE job_id = $1 AND state IN ('pending', 'running', 'waiting')", [jobId]);
    const released = await this.q<{ id: string }>('UPDATE jobs SET waits_for = NULL WHERE waits_for = $1 AND state = $2 RETURNING id', [jobId, 'queued']);
    return released.map((r) => r.id);
  }

  async heartbeat(jobId: string, seq: number, worker: string): Promise<{ cancel: boolean }> {
    const rows = await this.q<{ cancel: boolean }>(
      `UPDATE job_tasks t SET heartbeat_at = now() FROM jobs j WHERE t.job_id = $1 AND t.seq = $2 AND t.worker = $3 AND j.id = t.job_id
       RETURNING j.cancel_requested_at IS NOT NULL AS cancel`,
      [jobId, seq, worker],
    );
    return rows[0] ?? { cancel: false };
  }

  async requestCancel(jobId: string): Promise<void> {
    await this.q('UPDATE jobs SET cancel_requested_at = coalesce(cancel_requested_at, now()) WHERE id = $1', [jobId]);
  }

  /** A failed or cancelled job, again from task `fromSeq` (every task from there runs again). */
  async reopen(jobId: string, fromSeq: number): Promise<void> {
    await this.q("UPDATE jobs SET state = 'queued', error = NULL, finished_at = NULL, cancel_requested_at = NULL WHERE id = $1", [jobId]);
    await this.q("UPDATE job_tasks SET state = 'pending', attempts = 0, waits = 0, started_at = NULL, error = NULL, finished_at = NULL, next_attempt_at = NULL, worker = NULL WHERE job_id = $1 AND seq >= $2", [jobId, fromSeq]);
  }

  /** Running tasks whose worker stopped sending heartbeats: back to pending. Returns their jobs. */
  async reclaimAbandoned(staleSeconds: number): Promise<{ job_id: string; seq: number }[]> {
    return this.q(
      `UPDATE job_tasks SET state = 'pending', error = 'worker ' || worker || ' stopped answering', worker = NULL, next_attempt_at = NULL
        WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1)
        RETURNING job_id, seq`,
      [staleSeconds],
    );
  }

  async log(jobId: string, seq: number | null, level: 'info' | 'warn' | 'error', message: string): Promise<void> {
    await this.q('INSERT INTO job_logs (job_id, seq, level, message) VALUES ($1, $2, $3, $4)', [jobId, seq, level, message]);
  }

  /** A line for the task that runs now (the job's, when none runs): boot milestones of an install. */
  async logToCurrentTask(jobId: string, level: 'info' | 'warn' | 'error', message: string): Promise<void> {
    await this.q(
      `INSERT INTO job_logs (job_id, seq, level, message)
       VALUES ($1, (SELECT seq FROM job_tasks WHERE job_id = $1 AND state IN ('running', 'waiting') ORDER BY seq LIMIT 1), $2, $3)`,
      [jobId, level, message],
    );
  }

  logs(jobId: string, afterId = '0'): Promise<LogRow[]> {
    return this.q<LogRow>('SELECT * FROM job_logs WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT 1000', [jobId, afterId]);
  }
}
