import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** Row shapes of the inventory tables (the invariants are in the migration, not here). */

@Entity('sites')
export class SiteEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('text') code!: string;
  @Column('text') name!: string;
  @Column('text', { nullable: true }) address!: string | null;
  @Column('text') timezone!: string;
  @Column('time', { name: 'visit_opens' }) visitOpens!: string;
  @Column('time', { name: 'visit_closes' }) visitCloses!: string;
  @Column({ type: 'timestamptz', name: 'created_at', insert: false, update: false }) createdAt!: Date;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt!: Date;
}

@Entity('racks')
export class RackEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'site_id' }) siteId!: string;
  @Column('text') name!: string;
  @Column('text', { nullable: true }) location!: string | null;
  @Column('int', { name: 'height_u' }) heightU!: number;
  @Column('int', { name: 'power_budget_w', nullable: true }) powerBudgetW!: number | null;
  @Column({ type: 'timestamptz', name: 'created_at', insert: false, update: false }) createdAt!: Date;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt!: Date;
}

export interface DiskSpec {
  kind: 'hdd' | 'ssd' | 'nvme';
  sizeGb: number;
  count: number;
}

@Entity('hardware_models')
export class HardwareModelEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('text') vendor!: string;
  @Column('text') model!: string;
  @Column('int', { name: 'height_u' }) heightU!: number;
  @Column('boolean', { name: 'full_depth' }) fullDepth!: boolean;
  @Column('int', { name: 'max_draw_w' }) maxDrawW!: number;
  @Column('int', { name: 'typical_draw_w' }) typicalDrawW!: number;
  @Column('text', { name: 'bmc_driver', nullable: true }) bmcDriver!: string | null;
  @Column('text', { nullable: true }) cpu!: string | null;
  @Column('int', { name: 'cpu_cores', nullable: true }) cpuCores!: number | null;
  @Column('int', { name: 'ram_gb', nullable: true }) ramGb!: number | null;
  @Column('jsonb') disks!: DiskSpec[];
  @Column({ type: 'timestamptz', name: 'created_at', insert: false, update: false }) createdAt!: Date;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt!: Date;
}

@Entity('devices')
export class DeviceEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'site_id' }) siteId!: string;
  @Column('text') name!: string;
  @Column('text') role!: string;
  @Column('uuid', { name: 'model_id' }) modelId!: string;
  @Column('text', { name: 'asset_tag', nullable: true }) assetTag!: string | null;
  @Column('text', { nullable: true }) serial!: string | null;
  @Column('text', { name: 'customer_id', nullable: true }) customerId!: string | null;
  @Column('uuid', { name: 'rack_id', nullable: true }) rackId!: string | null;
  @Column('int', { nullable: true }) position!: number | null;
  @Column('text', { nullable: true }) face!: 'front' | 'rear' | null;
  @Column('int', { name: 'height_u' }) heightU!: number;
  @Column('boolean', { name: 'full_depth' }) fullDepth!: boolean;
  @Column('text', { name: 'bmc_address', nullable: true }) bmcAddress!: string | null;
  @Column('int', { name: 'bmc_port', nullable: true }) bmcPort!: number | null;
  @Column('text', { name: 'bmc_driver', nullable: true }) bmcDriver!: string | null;
  @Column('text', { name: 'bmc_username', nullable: true }) bmcUsername!: string | null;
  @Column('text', { name: 'bmc_password_enc', nullable: true, select: false }) bmcPasswordEnc!: string | null;
  /** A named credential (bmc_credentials) instead of a password of its own. */
  @Column('text', { name: 'bmc_password_ref', nullable: true }) bmcPasswordRef!: string | null;
  @Column('boolean', { name: 'bmc_accept_privilege_risk', default: false }) bmcAcceptPrivilegeRisk!: boolean;
  @Column('text', { name: 'bmc_console_driver', nullable: true }) bmcConsoleDriver!: string | null;
  @Column('text', { nullable: true }) notes!: string | null;
  /** Rented servers only (set by the database on insert); changed only by the lifecycle service. */
  @Column({ type: 'text', nullable: true, insert: false, update: false }) lifecycle!: string | null;
  @Column({ type: 'boolean', insert: false, update: false }) maintenance!: boolean;
  @Column({ type: 'text', name: 'maintenance_reason', nullable: true, insert: false, update: false }) maintenanceReason!: string | null;
  @Column({ type: 'text', name: 'last_error', nullable: true, insert: false, update: false }) lastError!: string | null;
  @Column({ type: 'timestamptz', name: 'created_at', insert: false, update: false }) createdAt!: Date;
  @Column({ type: 'timestamptz', name: 'updated_at' }) updatedAt!: Date;
}

@Entity('nics')
export class NicEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'device_id' }) deviceId!: string;
  @Column('text') name!: string;
  @Column('macaddr') mac!: string;
  @Column('boolean') pxe!: boolean;
  @Column('inet', { nullable: true }) ip!: string | null;
}

@Entity('power_panels')
export class PowerPanelEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'site_id' }) siteId!: string;
  @Column('text') name!: string;
}

@Entity('power_feeds')
export class PowerFeedEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'panel_id' }) panelId!: string;
  @Column('uuid', { name: 'rack_id', nullable: true }) rackId!: string | null;
  @Column('text') name!: string;
  @Column('int') voltage!: number;
  @Column('int') amperage!: number;
  @Column('text') phase!: 'single' | 'three';
  @Column('int', { name: 'max_utilization_pct' }) maxUtilizationPct!: number;
  @Column({ type: 'int', name: 'budget_w', insert: false, update: false }) budgetW!: number;
}

@Entity('pdus')
export class PduEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'feed_id' }) feedId!: string;
  @Column('uuid', { name: 'device_id', nullable: true }) deviceId!: string | null;
  @Column('text') name!: string;
  @Column('int') outlets!: number;
}

@Entity('power_connections')
export class PowerConnectionEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'device_id' }) deviceId!: string;
  @Column('uuid', { name: 'pdu_id' }) pduId!: string;
  @Column('int', { nullable: true }) outlet!: number | null;
  @Column('int', { name: 'allocated_w' }) allocatedW!: number;
  @Column('int', { name: 'max_w' }) maxW!: number;
}

export const INVENTORY_ENTITIES = [
  SiteEntity,
  RackEntity,
  HardwareModelEntity,
  DeviceEntity,
  NicEntity,
  PowerPanelEntity,
  PowerFeedEntity,
  PduEntity,
  PowerConnectionEntity,
];
