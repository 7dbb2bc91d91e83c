import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';
import { TableRepository } from '../../database/table.repository';
import { WorkTaskEntity } from './work-task.entity';

@Injectable()
export class WorkTaskRepository extends TableRepository<WorkTaskEntity> {
  protected readonly entity = WorkTaskEntity;
  constructor(db: Database) {
    super(db);
  }

  /**
   * Move a task from one of `from` to `to` in one statement: of two engineers claiming at once,
   * exactly one gets it. Null when the task was not in a `from` state (or `onlyBy` differs).
   */
  async transition(id: string, from: string[], values: Partial<WorkTaskEntity>, onlyBy?: string): Promise<WorkTaskEntity | null> {
    const qb = this.repo
      .createQueryBuilder()
      .update()
      .set({ ...values, ...(values.claimedAt === undefined && values.state === 'claimed' ? { claimedAt: () => 'now()' } : {}) } as never)
      .where('id = :id AND state IN (:...from)', { id, from });
    if (onlyBy) qb.andWhere('claimed_by = :onlyBy', { onlyBy });
    const res = await qb.execute();
    return res.affected ? this.findById(id) : null;
  }

  /** Open tasks about one thing (to close them when the thing is done). */
  pendingFor(refType: string, refId: string, kind?: string): Promise<WorkTaskEntity[]> {
    const qb = this.query('w')
      .where('w.ref_type = :refType AND w.ref_id = :refId', { refType, refId })
      .andWhere("w.state IN ('open', 'claimed')");
    if (kind) qb.andWhere('w.kind = :kind', { kind });
    return qb.getMany();
  }
}
