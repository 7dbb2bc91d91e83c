import { Observable } from 'rxjs';
import type { JobRepository } from './job.repository';

export interface JobEvent {
  /** "log" (a log line), "task" (a task changed state), "job" (the job changed state). */
  type: 'job' | 'task' | 'log';
  /** The last log line's id: as Last-Event-ID it resumes the stream after that line. */
  id: string;
  data: Record<string, unknown>;
}

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

/**
 * A job's progress as a stream: every task transition and log line, in order, ending with the
 * job's final state. Reads the job's tables (the truth, whichever worker runs it) every `everyMs`.
 * `afterLogId` resumes a stream (the SSE Last-Event-ID).
 */
export function jobEvents(jobs: JobRepository, jobId: string, opts: { everyMs?: number; afterLogId?: string; maxMs?: number } = {}): Observable<JobEvent> {
  return new Observable<JobEvent>((sub) => {
    let lastLog = opts.afterLogId ?? '0';
    const taskStates = new Map<number, string>();
    let jobState = '';
    let stopped = false;
    const deadline = Date.now() + (opts.maxMs ?? 6 * 3600_000);
    const tick = async () => {
      if (stopped) return;
      const job = await jobs.job(jobId);
      if (!job) {
        sub.error(new Error(`job ${jobId} does not exist`));
        return;
      }
      for (const t of await jobs.tasks(jobId)) {
        if (taskStates.get(t.seq) !== t.state) {
          taskStates.set(t.seq, t.state);
          sub.next({ type: 'task', id: lastLog, data: { seq: t.seq, name: t.name, state: t.state, attempts: t.attempts, error: t.error } });
        }
      }
      for (const l of await jobs.logs(jobId, lastLog)) {
        lastLog = l.id;
        sub.next({ type: 'log', id: l.id, data: { seq: l.seq, level: l.level, message: l.message, at: l.at.toISOString() } });
      }
      if (job.state !== jobState) {
        jobState = job.state;
        sub.next({ type: 'job', id: lastLog, data: { state: job.state, error: job.error } });
      }
      if (FINAL.has(job.state) || Date.now() > deadline) {
        stopped = true;
        sub.complete();
        return;
      }
      setTimeout(() => void tick().catch((err) => sub.error(err)), opts.everyMs ?? 300);
    };
    void tick().catch((err) => sub.error(err));
    return () => {
      stopped = true;
    };
  });
}
