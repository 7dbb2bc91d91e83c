import { Injectable } from '@nestjs/common';

export interface TaskContext {
  jobId: string;
  params: Record<string, unknown>;
  serverId: string | null;
  attempt: number;
  /** How many times this task already waited (see TaskWaiting); 0 on its first run. */
  waits: number;
  /** When this task first started (a waiting task's deadline counts from here). */
  firstStartedAt: Date;
  /** Aborted on timeout or when the job is cancelled: stop at the next safe point. */
  signal: AbortSignal;
  log(message: string, level?: 'info' | 'warn' | 'error'): Promise<void>;
}

/**
 * Thrown by a task that waits for something outside (an installer's callback): the task gives its
 * worker back and runs again after `retryInMs`, or sooner when the job is woken: the same attempt.
 */
export class TaskWaiting extends Error {
  constructor(readonly retryInMs: number) {
    super(`waiting; next check in ${retryInMs} ms`);
    this.name = 'TaskWaiting';
  }
}

export interface TaskDefinition {
  name: string;
  /** Each task must be idempotent: after a crash it runs again from its start. */
  run(ctx: TaskContext): Promise<void>;
  maxAttempts?: number;
  timeoutMs?: number;
  /** First retry after this long, doubling each time (default 1 s). */
  backoffMs?: number;
  /**
   * When the job is retried with this task unfinished, start again from this earlier task (an
   * installer that never called back needs the server booted into it again, not just more waiting).
   */
  retryFrom?: string;
}

export interface JobEnd {
  jobId: string;
  serverId: string | null;
  params: Record<string, unknown>;
  state: 'failed' | 'cancelled';
  error: string | null;
  log(message: string, level?: 'info' | 'warn' | 'error'): Promise<void>;
}

export interface JobDefinition {
  kind: string;
  tasks: TaskDefinition[];
  /** A hardware job holds its server: one at a time per server. */
  hardware: boolean;
  /** After a failure or a cancel: leave the hardware in a known state (best effort, logged). */
  onEnd?(end: JobEnd): Promise<void>;
  /** Before a retry, in its transaction: undo what onEnd did to the server's state. */
  onRetry?(job: { jobId: string; serverId: string | null; params: Record<string, unknown> }): Promise<void>;
}

/** The kinds of job racksmith knows; capabilities register theirs (install, wipe, power, ...). */
@Injectable()
export class JobRegistry {
  private readonly kinds = new Map<string, JobDefinition>();

  define(def: JobDefinition): void {
    if (this.kinds.has(def.kind)) throw new Error(`job kind ${def.kind} is defined twice`);
    if (!def.tasks.length) throw new Error(`job kind ${def.kind} has no tasks`);
    this.kinds.set(def.kind, def);
  }

  get(kind: string): JobDefinition | undefined {
    return this.kinds.get(kind);
  }

  names(): string[] {
    return [...this.kinds.keys()];
  }
}
