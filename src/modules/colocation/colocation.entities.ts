import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

export const ITEM_STATES = ['expected', 'received', 'installed', 'removed'] as const;
export type ItemState = (typeof ITEM_STATES)[number];

@Entity('colocation_items')
export class ColocationItemEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'site_id' }) siteId!: string;
  @Column('uuid', { name: 'device_id' }) deviceId!: string;
  @Column('text', { name: 'customer_id' }) customerId!: string;
  @Column('text', { nullable: true }) description!: string | null;
  @Column('text', { name: 'install_by' }) installBy!: 'owner' | 'staff';
  @Column('text') state!: ItemState;
  @Column('timestamptz', { name: 'received_at', nullable: true }) receivedAt!: Date | null;
  @Column('text', { name: 'received_by', nullable: true }) receivedBy!: string | null;
  @Column('text', { name: 'received_location', nullable: true }) receivedLocation!: 'data-center' | 'delivery-point' | null;
  @Column('text', { array: true }) serials!: string[];
  @Column('text', { nullable: true }) condition!: string | null;
  @Column('timestamptz', { name: 'installed_at', nullable: true }) installedAt!: Date | null;
  @Column('text', { name: 'installed_by', nullable: true }) installedBy!: string | null;
  @Column('timestamptz', { name: 'removed_at', nullable: true }) removedAt!: Date | null;
  @Column('text', { name: 'removed_by', nullable: true }) removedBy!: string | null;
  @Column({ type: 'timestamptz', name: 'created_at', insert: false, update: false }) createdAt!: Date;
  @Column('text', { name: 'created_by' }) createdBy!: string;
}

@Entity('colocation_events')
export class ColocationEventEntity {
  @PrimaryGeneratedColumn('identity', { generatedIdentity: 'ALWAYS' }) id!: string;
  @Column('uuid', { name: 'item_id' }) itemId!: string;
  @Column('text') step!: string;
  @Column({ type: 'timestamptz', insert: false, update: false }) at!: Date;
  @Column('text') by!: string;
  @Column('jsonb') details!: Record<string, unknown>;
}

export const VISIT_STATES = ['requested', 'approved', 'declined', 'cancelled'] as const;

@Entity('visit_bookings')
export class VisitBookingEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'site_id' }) siteId!: string;
  @Column('text', { name: 'customer_id' }) customerId!: string;
  @Column('timestamptz', { name: 'starts_at' }) startsAt!: Date;
  @Column('timestamptz', { name: 'ends_at' }) endsAt!: Date;
  @Column('jsonb') visitors!: { name: string; document?: string }[];
  @Column('text', { nullable: true }) purpose!: string | null;
  @Column('text') state!: (typeof VISIT_STATES)[number];
  @Column('text', { name: 'decided_by', nullable: true }) decidedBy!: string | null;
  @Column('timestamptz', { name: 'decided_at', nullable: true }) decidedAt!: Date | null;
  @Column('text', { name: 'decision_note', nullable: true }) decisionNote!: string | null;
  @Column({ type: 'timestamptz', name: 'created_at', insert: false, update: false }) createdAt!: Date;
  @Column('text', { name: 'created_by' }) createdBy!: string;
}
