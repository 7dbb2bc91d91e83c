import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';
import { ConflictError, NotFoundError } from '../../common/errors';
import type { Page } from '../../common/pagination';
import { requestContext } from '../../common/request-context';
import { AuditService } from '../audit/audit.service';
import { WorkTaskRepository } from './work-task.repository';
import type { WorkKind, WorkTaskEntity } from './work-task.entity';

export interface WorkTaskView {
  id: string;
  siteId: string;
  kind: WorkKind;
  title: string;
  details: Record<string, unknown>;
  ref: { type: string; id: string } | null;
  state: string;
  claimedBy: string | null;
  claimedAt: string | null;
  completedBy: string | null;
  completedAt: string | null;
  result: string | null;
  createdAt: string;
}

export function workTaskView(w: WorkTaskEntity): WorkTaskView {
  return {
    id: w.id,
    siteId: w.siteId,
    kind: w.kind,
    title: w.title,
    details: w.details,
    ref: w.refType && w.refId ? { type: w.refType, id: w.refId } : null,
    state: w.state,
    claimedBy: w.claimedBy,
    claimedAt: w.claimedAt?.toISOString() ?? null,
    completedBy: w.completedBy,
    completedAt: w.completedAt?.toISOString() ?? null,
    result: w.result,
    createdAt: w.createdAt.toISOString(),
  };
}

const actorName = () => requestContext.actorName();

/**
 * The work queue of each site: tasks that need a person (receive equipment, install it, remove
 * it, approve a visit, pick up after a failed automation step). Engineers claim and complete them.
 */
/** work_tasks.title holds at most this many characters. */
const MAX_TITLE = 300;

@Injectable()
export class WorkQueueService {
  constructor(
    private readonly tasks: WorkTaskRepository,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  /** Put a task in a site's queue (inside the caller's transaction, if any). */
  async open(siteId: string, kind: WorkKind, title: string, ref?: { type: string; id: string }, details: Record<string, unknown> = {}): Promise<WorkTaskView> {
    // Titles made from reasons and BMC messages can run long: the whole text goes into the details.
    if (title.length > MAX_TITLE) {
      details = { ...details, title };
      title = `${title.slice(0, MAX_TITLE - 1)}…`;
    }
    return this.db.transaction(async () => {
      const task = await this.tasks.insert({ siteId, kind, title, details, refType: ref?.type ?? null, refId: ref?.id ?? null, state: 'open' });
      await this.audit.record({ action: 'work_task.open', targetType: 'work_task', targetId: task.id, changes: { kind, title, ref } });
      return workTaskView(task);
    });
  }

  /** Close the open tasks about a thing that got done some other way (e.g. the item was installed). */
  async closeFor(ref: { type: string; id: string }, kind: WorkKind, result: string): Promise<void> {
    for (const t of await this.tasks.pendingFor(ref.type, ref.id, kind)) {
      const done = await this.tasks.transition(t.id, ['open', 'claimed'], { state: 'done', completedBy: actorName(), completedAt: new Date(), result, claimedBy: t.claimedBy ?? actorName(), claimedAt: t.claimedAt ?? new Date() });
      if (done) await this.audit.record({ action: 'work_task.complete', targetType: 'work_task', targetId: t.id, changes: { result } });
    }
  }

  async list(siteId: string, states: string[], limit: number, cursor?: string): Promise<Page<WorkTaskView>> {
    const qb = this.tasks.query('w').where('w.site_id = :siteId', { siteId }).andWhere('w.state IN (:...states)', { states });
    const page = await this.tasks.page(qb, 'createdAt', limit, cursor);
    return { items: page.items.map(workTaskView), nextCursor: page.nextCursor };
  }

  async get(id: string): Promise<WorkTaskEntity> {
    const task = await this.tasks.findById(id);
    if (!task) throw new NotFoundError('work task', id);
    return task;
  }

  /** Take an open task; of two engineers claiming at once, one gets it, the other a 409 naming them. */
  claim(id: string): Promise<WorkTaskView> {
    return this.db.transaction(async () => {
      const me = actorName();
      const task = await this.tasks.transition(id, ['open'], { state: 'claimed', claimedBy: me });
      if (!task) {
        const current = await this.get(id);
        throw new ConflictError('task_not_open', current.state === 'claimed' ? `task is already claimed by ${current.claimedBy}` : `task is ${current.state}`, { state: current.state, claimedBy: current.claimedBy });
      }
      await this.audit.record({ action: 'work_task.claim', targetType: 'work_task', targetId: id });
      return workTaskView(task);
    });
  }

  /** Finish a claimed task (its claimant, or an admin). */
  complete(id: string, result: string | undefined, asAdmin: boolean): Promise<WorkTaskView> {
    return this.db.transaction(async () => {
      const me = actorName();
      const task = await this.tasks.transition(id, ['claimed'], { state: 'done', completedBy: me, completedAt: new Date(), result: result ?? null }, asAdmin ? undefined : me);
      if (!task) {
        const current = await this.get(id);
        throw new ConflictError(
          'task_not_claimed_by_you',
          current.state === 'claimed' ? `task is claimed by ${current.claimedBy}; only they (or an admin) complete it` : `task is ${current.state}: claim it first`,
          { state: current.state, claimedBy: current.claimedBy },
        );
      }
      await this.audit.record({ action: 'work_task.complete', targetType: 'work_task', targetId: id, changes: { result } });
      return workTaskView(task);
    });
  }
}
