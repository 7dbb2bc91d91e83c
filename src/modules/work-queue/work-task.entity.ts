import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

export const WORK_KINDS = ['intake', 'staff-installation', 'removal', 'visit-approval', 'automation-failure', 'backorder', 'other'] as const;
export type WorkKind = (typeof WORK_KINDS)[number];
export const WORK_STATES = ['open', 'claimed', 'done', 'cancelled'] as const;

@Entity('work_tasks')
export class WorkTaskEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  @Column('uuid', { name: 'site_id' }) siteId!: string;
  @Column('text') kind!: WorkKind;
  @Column('text') title!: string;
  @Column('jsonb') details!: Record<string, unknown>;
  @Column('text', { name: 'ref_type', nullable: true }) refType!: string | null;
  @Column('text', { name: 'ref_id', nullable: true }) refId!: string | null;
  @Column('text') state!: (typeof WORK_STATES)[number];
  @Column('text', { name: 'claimed_by', nullable: true }) claimedBy!: string | null;
  @Column('timestamptz', { name: 'claimed_at', nullable: true }) claimedAt!: Date | null;
  @Column('text', { name: 'completed_by', nullable: true }) completedBy!: string | null;
  @Column('timestamptz', { name: 'completed_at', nullable: true }) completedAt!: Date | null;
  @Column('text', { nullable: true }) result!: string | null;
  @Column({ type: 'timestamptz', name: 'created_at', insert: false, update: false }) createdAt!: Date;
}
