import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';
import { TableRepository } from '../../database/table.repository';
import type { Page } from '../../common/pagination';
import { DeviceEntity } from '../inventory/inventory.entities';
import type { LifecycleState } from './lifecycle';

export interface TransitionRow {
  id: string;
  from_state: string;
  to_state: string;
  cause_type: string;
  cause_id: string | null;
  actor: string;
  note: string | null;
  at: Date;
}

/** Lifecycle columns and history of rented servers (devices with role rented-server). */
@Injectable()
export class ServerRepository extends TableRepository<DeviceEntity> {
  protected readonly entity = DeviceEntity;
  constructor(db: Database) {
    super(db);
  }

  /** The server row, locked for the rest of the transaction. */
  lockServer(id: string): Promise<DeviceEntity | null> {
    return this.db
      .manager()
      .getRepository(DeviceEntity)
      .createQueryBuilder('d')
      .setLock('pessimistic_write')
      .where('d.id = :id AND d.role = :role', { id, role: 'rented-server' })
      .getOne();
  }

  findServer(id: string): Promise<DeviceEntity | null> {
    return this.db.manager().getRepository(DeviceEntity).findOneBy({ id, role: 'rented-server' });
  }

  /** The biggest disk the server's hardware model lists, in bytes (null: the model lists none). */
  async largestDiskBytes(id: string): Promise<number | null> {
    const [row] = await this.db.rows<{ gb: number | null }>(
      `SELECT (SELECT max((x->>'sizeGb')::int) FROM jsonb_array_elements(m.disks) x) AS gb
         FROM devices d JOIN hardware_models m ON m.id = d.model_id WHERE d.id = $1`,
      [id],
    );
    return row?.gb ? row.gb * 1e9 : null;
  }

  /** A page of rented servers in name order. */
  list(filter: { siteId?: string; lifecycle?: string; maintenance?: boolean }, limit: number, cursor?: string): Promise<Page<DeviceEntity>> {
    const qb = this.query('d').where("d.role = 'rented-server'");
    if (filter.siteId) qb.andWhere('d.site_id = :siteId', { siteId: filter.siteId });
    if (filter.lifecycle) qb.andWhere('d.lifecycle = :lifecycle', { lifecycle: filter.lifecycle });
    if (filter.maintenance !== undefined) qb.andWhere('d.maintenance = :m', { m: filter.maintenance });
    return this.page(qb, 'name', limit, cursor);
  }

  async setState(id: string, to: LifecycleState, lastError: string | null | undefined): Promise<void> {
    await this.db
      .manager()
      .query(`UPDATE devices SET lifecycle = $2, last_error = CASE WHEN $3::boolean THEN $4 ELSE last_error END, updated_at = now() WHERE id = $1`, [id, to, lastError !== undefined, lastError ?? null]);
  }

  async setMaintenance(id: string, on: boolean, reason: string | null): Promise<void> {
    await this.db.manager().query('UPDATE devices SET maintenance = $2, maintenance_reason = $3, updated_at = now() WHERE id = $1', [id, on, on ? reason : null]);
  }

  async addTransition(t: { deviceId: string; from: string; to: string; causeType: string; causeId?: string | null; actor: string; note?: string | null }): Promise<void> {
    await this.db
      .manager()
      .query('INSERT INTO server_transitions (device_id, from_state, to_state, cause_type, cause_id, actor, note) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
        t.deviceId,
        t.from,
        t.to,
        t.causeType,
        t.causeId ?? null,
        t.actor,
        t.note ?? null,
      ]);
  }

  history(id: string): Promise<TransitionRow[]> {
    return this.db.manager().query('SELECT * FROM server_transitions WHERE device_id = $1 ORDER BY id', [id]);
  }
}
