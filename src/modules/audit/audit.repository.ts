import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';
import { AuditEventEntity } from './audit-event.entity';

export interface AuditFilter {
  actor?: string;
  action?: string;
  targetType?: string;
  targetId?: string;
  requestId?: string;
  since?: Date;
  until?: Date;
  /** Only rows with id below this (the cursor). */
  beforeId?: string;
}

export type NewAuditEvent = Omit<AuditEventEntity, 'id' | 'at'>;

@Injectable()
export class AuditRepository {
  constructor(private readonly db: Database) {}

  async insert(event: NewAuditEvent): Promise<AuditEventEntity> {
    const repo = this.db.manager().getRepository(AuditEventEntity);
    const { identifiers } = await repo.insert(event as never);
    return repo.findOneByOrFail({ id: identifiers[0].id });
  }

  /** Newest first; `limit` rows. */
  list(filter: AuditFilter, limit: number): Promise<AuditEventEntity[]> {
    const qb = this.db.manager().getRepository(AuditEventEntity).createQueryBuilder('e');
    if (filter.actor) qb.andWhere('e.actor = :actor', { actor: filter.actor });
    if (filter.action) {
      // "token.*" matches every token action.
      if (filter.action.endsWith('.*')) qb.andWhere('e.action LIKE :action', { action: `${filter.action.slice(0, -1)}%` });
      else qb.andWhere('e.action = :action', { action: filter.action });
    }
    if (filter.targetType) qb.andWhere('e.target_type = :targetType', { targetType: filter.targetType });
    if (filter.targetId) qb.andWhere('e.target_id = :targetId', { targetId: filter.targetId });
    if (filter.requestId) qb.andWhere('e.request_id = :requestId', { requestId: filter.requestId });
    if (filter.since) qb.andWhere('e.at >= :since', { since: filter.since });
    if (filter.until) qb.andWhere('e.at < :until', { until: filter.until });
    if (filter.beforeId) qb.andWhere('e.id < :beforeId', { beforeId: filter.beforeId });
    return qb.orderBy('e.id', 'DESC').limit(limit).getMany();
  }
}
