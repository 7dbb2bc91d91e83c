import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';
import { TableRepository } from '../../database/table.repository';
import { ColocationEventEntity, ColocationItemEntity, VisitBookingEntity } from './colocation.entities';

@Injectable()
export class ColocationItemRepository extends TableRepository<ColocationItemEntity> {
  protected readonly entity = ColocationItemEntity;
  constructor(db: Database) {
    super(db);
  }

  /** Move the item from `from` to the new state in one statement (null if it was not in `from`). */
  async advance(id: string, from: string, values: Partial<ColocationItemEntity>): Promise<ColocationItemEntity | null> {
    const res = await this.repo.createQueryBuilder().update().set(values as never).where('id = :id AND state = :from', { id, from }).execute();
    return res.affected ? this.findById(id) : null;
  }
}

@Injectable()
export class ColocationEventRepository {
  constructor(private readonly db: Database) {}

  async add(itemId: string, step: string, by: string, details: Record<string, unknown>): Promise<void> {
    await this.db.manager().getRepository(ColocationEventEntity).insert({ itemId, step, by, details } as never);
  }

  ofItem(itemId: string): Promise<ColocationEventEntity[]> {
    return this.db.manager().getRepository(ColocationEventEntity).find({ where: { itemId }, order: { id: 'ASC' } });
  }
}

@Injectable()
export class VisitBookingRepository extends TableRepository<VisitBookingEntity> {
  protected readonly entity = VisitBookingEntity;
  constructor(db: Database) {
    super(db);
  }

  async decide(id: string, values: Partial<VisitBookingEntity>): Promise<VisitBookingEntity | null> {
    const res = await this.repo.createQueryBuilder().update().set(values as never).where("id = :id AND state = 'requested'", { id }).execute();
    return res.affected ? this.findById(id) : null;
  }
}
