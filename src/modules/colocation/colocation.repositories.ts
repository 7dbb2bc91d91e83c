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

  /**
   * Racks of these sites (all when empty) with the unit ranges their devices take, their PDUs and
   * the power left under the rack's budget, fullest power headroom first: where colocation space
   * can be reserved. The database's constraints still decide (a concurrent reservation loses).
   */
  rackSpace(siteIds: string[]): Promise<{ id: string; site_id: string; name: string; height_u: number; headroom_w: number | null; taken: [number, number][]; pdus: string[] }[]> {
    return this.db.rows(
      `SELECT r.id, r.site_id, r.name, r.height_u,
              r.power_budget_w - coalesce((SELECT sum(pc.allocated_w) FROM power_connections pc JOIN devices d ON d.id = pc.device_id WHERE d.rack_id = r.id), 0) AS headroom_w,
              coalesce((SELECT json_agg(json_build_array(d.position, d.position + d.height_u - 1)) FROM devices d WHERE d.rack_id = r.id AND d.position IS NOT NULL), '[]') AS taken,
              coalesce((SELECT json_agg(p.id ORDER BY f.name, p.name) FROM pdus p JOIN power_feeds f ON f.id = p.feed_id WHERE f.rack_id = r.id), '[]') AS pdus
         FROM racks r
        WHERE (cardinality($1::uuid[]) = 0 OR r.site_id = ANY ($1::uuid[]))
        ORDER BY array_position($1::uuid[], r.site_id), headroom_w DESC NULLS FIRST, r.name`,
      [siteIds],
    );
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
