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

/** Where a stream hears of a job's steps: notifications (LISTEN), with polling while they are off. */
export interface JobWakeups {
  readonly listening: boolean;
  subscribe(jobId: string, fn: () => void): () => void;
}

export interface JobEventOptions {
  /** Poll interval without notifications (and while they are down). */
  everyMs?: number;
  /** With notifications on: a read this often anyway, in case one was lost. */
  safetyMs?: number;
  afterLogId?: string;
  maxMs?: number;
  wakeups?: JobWakeups;
}

/**
 * A job's progress as a stream: every task transition and log line, in order, ending with the
 * job's final state. Reads the job's tables (the truth, whichever worker runs it) in one query
 * each time a notification names the job, or every `everyMs` while there are none.
 * `afterLogId` resumes a stream (the SSE Last-Event-ID).
 */
export function jobEvents(jobs: Pick<JobRepository, 'progress'>, jobId: string, opts: JobEventOptions = {}): Observable<JobEvent> {
  return new Observable<JobEvent>((sub) => {
    let lastLog = opts.afterLogId ?? '0';
    const taskStates = new Map<number, string>();
    let jobState = '';
    let stopped = false;
    let reading = false;
    let again = false;
    let timer: NodeJS.Timeout | undefined;
    const deadline = Date.now() + (opts.maxMs ?? 6 * 3600_000);
    const wake = opts.wakeups;
    /** True once the job has ended: the stream is complete. */
    const tick = async (): Promise<boolean> => {
      const p = await jobs.progress(jobId, lastLog);
      if (!p) {
        sub.error(new Error(`job ${jobId} does not exist`));
        return true;
      }
      for (const t of p.tasks) {
        if (taskStates.get(t.seq) !== t.state) {
          taskStates.set(t.seq, t.state);
          sub.next({ type: 'task', id: lastLog, data: { seq: t.seq, name: t.name, state: t.state, attempts: t.attempts, error: t.error } });
        }
      }
      for (const l of p.logs) {
        lastLog = l.id;
        sub.next({ type: 'log', id: l.id, data: { seq: l.seq, level: l.level, message: l.message, at: l.at.toISOString() } });
      }
      if (p.state !== jobState) {
        jobState = p.state;
        sub.next({ type: 'job', id: lastLog, data: { state: p.state, error: p.error } });
      }
      // A full page of lines: read on at once.
      if (p.logs.length >= 1000) again = true;
      if (FINAL.has(p.state) || Date.now() > deadline) {
        sub.complete();
        return true;
      }
      return false;
    };
    const run = async (): Promise<void> => {
      if (stopped) return;
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      clearTimeout(timer);
      try {
        stopped = await tick();
      } catch (err) {
        stopped = true;
        sub.error(err);
      } finally {
        reading = false;
      }
      if (stopped) return;
      if (again) {
        again = false;
        void run();
        return;
      }
      timer = setTimeout(() => void run(), wake?.listening ? (opts.safetyMs ?? 10_000) : (opts.everyMs ?? 300));
    };
    const unsubscribe = wake?.subscribe(jobId, () => void run());
    void run();
    return () => {
      stopped = true;
      clearTimeout(timer);
      unsubscribe?.();
    };
  });
}
