import { Injectable } from '@nestjs/common';
import { In } from 'typeorm';
import { Database } from '../../database/database';
import { TableRepository } from '../../database/table.repository';
import {
  DeviceEntity,
  HardwareModelEntity,
  NicEntity,
  PduEntity,
  PowerConnectionEntity,
  PowerFeedEntity,
  PowerPanelEntity,
  RackEntity,
  SiteEntity,
} from './inventory.entities';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

@Injectable()
export class SiteRepository extends TableRepository<SiteEntity> {
  protected readonly entity = SiteEntity;
  constructor(db: Database) {
    super(db);
  }

  /** By id or by code ("baltic"). */
  findByRef(ref: string): Promise<SiteEntity | null> {
    return UUID.test(ref) ? this.findById(ref) : this.repo.findOneBy({ code: ref.toLowerCase() });
  }

  all(): Promise<SiteEntity[]> {
    return this.repo.find({ order: { code: 'ASC' } });
  }
}

@Injectable()
export class RackRepository extends TableRepository<RackEntity> {
  protected readonly entity = RackEntity;
  constructor(db: Database) {
    super(db);
  }

  findByName(siteId: string, name: string): Promise<RackEntity | null> {
    return this.repo.findOneBy({ siteId, name });
  }

  bySite(siteId: string): Promise<RackEntity[]> {
    return this.repo.find({ where: { siteId }, order: { name: 'ASC' } });
  }
}

@Injectable()
export class HardwareModelRepository extends TableRepository<HardwareModelEntity> {
  protected readonly entity = HardwareModelEntity;
  constructor(db: Database) {
    super(db);
  }

  findByName(vendor: string, model: string): Promise<HardwareModelEntity | null> {
    return this.repo.findOneBy({ vendor, model });
  }

  /** The model by name, made with these values if it does not exist (concurrent callers get the same row). */
  async ensure(m: { vendor: string; model: string; heightU: number; fullDepth: boolean; maxDrawW: number; typicalDrawW: number }): Promise<HardwareModelEntity> {
    await this.db
      .manager()
      .query(`INSERT INTO hardware_models (vendor, model, height_u, full_depth, max_draw_w, typical_draw_w, disks) VALUES ($1, $2, $3, $4, $5, $6, '[]') ON CONFLICT (vendor, model) DO NOTHING`, [m.vendor, m.model, m.heightU, m.fullDepth, m.maxDrawW, m.typicalDrawW]);
    return (await this.findByName(m.vendor, m.model))!;
  }

  byIds(ids: string[]): Promise<HardwareModelEntity[]> {
    return ids.length ? this.repo.findBy({ id: In(ids) }) : Promise.resolve([]);
  }

  all(): Promise<HardwareModelEntity[]> {
    return this.repo.find({ order: { vendor: 'ASC', model: 'ASC' } });
  }
}

export interface DeviceFilter {
  siteId?: string;
  rackId?: string;
  role?: string;
  customerId?: string;
  modelId?: string;
  serial?: string;
  assetTag?: string;
  mac?: string;
  /** Free search: name, serial, asset tag, customer (substring), MAC (exact). */
  q?: string;
}

@Injectable()
export class DeviceRepository extends TableRepository<DeviceEntity> {
  protected readonly entity = DeviceEntity;
  constructor(db: Database) {
    super(db);
  }

  filtered(f: DeviceFilter) {
    const qb = this.query('d');
    if (f.siteId) qb.andWhere('d.site_id = :siteId', { siteId: f.siteId });
    if (f.rackId) qb.andWhere('d.rack_id = :rackId', { rackId: f.rackId });
    if (f.role) qb.andWhere('d.role = :role', { role: f.role });
    if (f.customerId) qb.andWhere('d.customer_id = :customerId', { customerId: f.customerId });
    if (f.modelId) qb.andWhere('d.model_id = :modelId', { modelId: f.modelId });
    if (f.serial) qb.andWhere('lower(d.serial) = lower(:serial)', { serial: f.serial });
    if (f.assetTag) qb.andWhere('lower(d.asset_tag) = lower(:assetTag)', { assetTag: f.assetTag });
    if (f.mac) qb.andWhere('d.id IN (SELECT device_id FROM nics WHERE mac = CAST(:mac AS macaddr))', { mac: f.mac });
    if (f.q) {
      const like = `%${f.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      const mac = normalizeMac(f.q);
      qb.andWhere(
        `(d.name ILIKE :like OR d.serial ILIKE :like OR d.asset_tag ILIKE :like OR d.customer_id ILIKE :like${
          mac ? ' OR d.id IN (SELECT device_id FROM nics WHERE mac = CAST(:mac AS macaddr))' : ''
        })`,
        { like, mac },
      );
    }
    return qb;
  }

  /** IPKVM grants that may still have an account on the device's BMC. */
  async liveConsoleGrants(id: string): Promise<number> {
    const [row] = await this.db.manager().query(`SELECT count(*)::int AS n FROM console_grants WHERE device_id = $1 AND state IN ('creating', 'active', 'revoke-pending')`, [id]);
    return row.n;
  }

  inRack(rackId: string): Promise<DeviceEntity[]> {
    return this.repo.find({ where: { rackId }, order: { position: 'DESC' } });
  }

  /** Devices whose units and faces overlap the given placement (for a helpful 409). */
  occupants(rackId: string, position: number, heightU: number, faces: [number, number], exceptId?: string): Promise<DeviceEntity[]> {
    const qb = this.query('d')
      .where('d.rack_id = :rackId', { rackId })
      .andWhere('d.units && int4range(:lo, :hi)', { lo: position, hi: position + heightU })
      .andWhere('d.faces && int4range(:f0, :f1)', { f0: faces[0], f1: faces[1] });
    if (exceptId) qb.andWhere('d.id <> :exceptId', { exceptId });
    return qb.getMany();
  }

  /**
   * Units used per rack, on the front, on the rear, and on either face (one rack, or a site's).
   * No two devices share a unit on a face (the exclusion constraint), so per face the heights add
   * up; only half-depth devices, front and rear, can sit on the same unit, so only their units
   * are counted one by one.
   */
  async unitUsage(scope: { rackId?: string; siteId?: string }): Promise<Map<string, { front: number; rear: number; any: number }>> {
    const rows: { rack_id: string; front: string; rear: string; any: string }[] = await this.db.manager().query(
      `WITH d AS (
         SELECT rack_id, height_u, faces, full_depth, units FROM devices
          WHERE rack_id IS NOT NULL AND ($1::uuid IS NULL OR rack_id = $1) AND ($2::uuid IS NULL OR site_id = $2)
       ), half AS (
         SELECT rack_id, count(DISTINCT u) AS n FROM d, generate_series(lower(units), upper(units) - 1) AS u
          WHERE NOT full_depth GROUP BY rack_id
       )
       SELECT d.rack_id,
              coalesce(sum(d.height_u) FILTER (WHERE lower(d.faces) = 0), 0) AS front,
              coalesce(sum(d.height_u) FILTER (WHERE upper(d.faces) = 2), 0) AS rear,
              coalesce(sum(d.height_u) FILTER (WHERE d.full_depth), 0) + coalesce(max(half.n), 0) AS any
         FROM d LEFT JOIN half ON half.rack_id = d.rack_id
        GROUP BY d.rack_id`,
      [scope.rackId ?? null, scope.siteId ?? null],
    );
    return new Map(rows.map((r) => [r.rack_id, { front: Number(r.front), rear: Number(r.rear), any: Number(r.any) }]));
  }

  /** Fresh planner statistics after a bulk change (a big import). */
  async analyze(): Promise<void> {
    await this.db.manager().query('ANALYZE devices, nics, power_connections, racks');
  }

  /** Which of these devices have a BMC password stored (without reading it). */
  async withBmcPassword(ids: string[]): Promise<Set<string>> {
    if (!ids.length) return new Set();
    const rows: { id: string }[] = await this.db.manager().query('SELECT id FROM devices WHERE id = ANY($1) AND (bmc_password_enc IS NOT NULL OR bmc_password_ref IS NOT NULL)', [ids]);
    return new Set(rows.map((r) => r.id));
  }

  /** The device's sealed BMC password: its own, or its named credential's. */
  async sealedBmcPassword(id: string): Promise<string | null> {
    const rows: { sealed: string | null }[] = await this.db
      .manager()
      .query('SELECT coalesce(c.secret_enc, d.bmc_password_enc) AS sealed FROM devices d LEFT JOIN bmc_credentials c ON c.name = d.bmc_password_ref WHERE d.id = $1', [id]);
    return rows[0]?.sealed ?? null;
  }

  async setBmcPassword(id: string, sealed: string | null): Promise<void> {
    await this.repo.update({ id }, { bmcPasswordEnc: sealed });
  }
}

@Injectable()
export class NicRepository extends TableRepository<NicEntity> {
  protected readonly entity = NicEntity;
  constructor(db: Database) {
    super(db);
  }

  ofDevices(deviceIds: string[]): Promise<NicEntity[]> {
    return deviceIds.length ? this.repo.find({ where: { deviceId: In(deviceIds) }, order: { name: 'ASC' } }) : Promise.resolve([]);
  }

  ofSite(siteId: string): Promise<NicEntity[]> {
    return this.query('n').innerJoin(DeviceEntity, 'd', 'd.id = n.device_id').where('d.site_id = :siteId', { siteId }).orderBy('n.name').getMany();
  }

  /** Replace a device's NICs with exactly these. */
  async replace(deviceId: string, nics: { name: string; mac: string; pxe: boolean; ip?: string | null }[]): Promise<void> {
    await this.repo.delete({ deviceId });
    if (nics.length) await this.repo.insert(nics.map((n) => ({ ...n, deviceId })));
  }
}

@Injectable()
export class PowerPanelRepository extends TableRepository<PowerPanelEntity> {
  protected readonly entity = PowerPanelEntity;
  constructor(db: Database) {
    super(db);
  }
}

@Injectable()
export class PowerFeedRepository extends TableRepository<PowerFeedEntity> {
  protected readonly entity = PowerFeedEntity;
  constructor(db: Database) {
    super(db);
  }
}

@Injectable()
export class PduRepository extends TableRepository<PduEntity> {
  protected readonly entity = PduEntity;
  constructor(db: Database) {
    super(db);
  }
}

export interface PowerUse {
  allocatedW: number;
  maxW: number;
}

@Injectable()
export class PowerConnectionRepository extends TableRepository<PowerConnectionEntity> {
  protected readonly entity = PowerConnectionEntity;
  constructor(db: Database) {
    super(db);
  }

  ofDevices(deviceIds: string[]): Promise<PowerConnectionEntity[]> {
    return deviceIds.length ? this.repo.findBy({ deviceId: In(deviceIds) }) : Promise.resolve([]);
  }

  ofSite(siteId: string): Promise<PowerConnectionEntity[]> {
    return this.query('c').innerJoin(DeviceEntity, 'd', 'd.id = c.device_id').where('d.site_id = :siteId', { siteId }).orderBy('c.created_at').getMany();
  }

  /** Allocated and maximum draw per rack, of one rack or of a site's (racks drawing nothing absent). */
  async byRack(scope: { rackId?: string; siteId?: string }): Promise<Map<string, PowerUse>> {
    const rows: { rack_id: string; allocated: string; max: string }[] = await this.db.manager().query(
      `SELECT d.rack_id, sum(c.allocated_w) AS allocated, sum(c.max_w) AS max
         FROM power_connections c JOIN devices d ON d.id = c.device_id
        WHERE d.rack_id IS NOT NULL AND ($1::uuid IS NULL OR d.rack_id = $1) AND ($2::uuid IS NULL OR d.site_id = $2)
        GROUP BY d.rack_id`,
      [scope.rackId ?? null, scope.siteId ?? null],
    );
    return new Map(rows.map((r) => [r.rack_id, { allocatedW: Number(r.allocated), maxW: Number(r.max) }]));
  }

  /** Allocated and maximum draw per feed of a site. */
  async byFeed(siteId: string): Promise<Map<string, PowerUse>> {
    const rows: { feed_id: string; allocated: string; max: string }[] = await this.db.manager().query(
      `SELECT p.feed_id, sum(c.allocated_w) AS allocated, sum(c.max_w) AS max
         FROM power_connections c JOIN pdus p ON p.id = c.pdu_id
         JOIN power_feeds f ON f.id = p.feed_id JOIN power_panels pp ON pp.id = f.panel_id
        WHERE pp.site_id = $1 GROUP BY p.feed_id`,
      [siteId],
    );
    return new Map(rows.map((r) => [r.feed_id, { allocatedW: Number(r.allocated), maxW: Number(r.max) }]));
  }

  /** Feeds of a site with their budgets. */
  feedsOfSite(siteId: string): Promise<PowerFeedEntity[]> {
    return this.db
      .manager()
      .getRepository(PowerFeedEntity)
      .createQueryBuilder('f')
      .innerJoin(PowerPanelEntity, 'pp', 'pp.id = f.panel_id')
      .where('pp.site_id = :siteId', { siteId })
      .orderBy('f.name')
      .getMany();
  }
}

/** "AA-BB-CC-DD-EE-FF", "aabb.ccdd.eeff", "aabbccddeeff" → "aa:bb:cc:dd:ee:ff"; undefined if not a MAC. */
export function normalizeMac(text: string): string | undefined {
  const hex = text.trim().toLowerCase();
  if (!/^([0-9a-f]{2}([:-]?)){5}[0-9a-f]{2}$|^([0-9a-f]{4}\.){2}[0-9a-f]{4}$/.test(hex)) return undefined;
  const digits = hex.replace(/[^0-9a-f]/g, '');
  return digits.length === 12 ? digits.match(/../g)!.join(':') : undefined;
}
