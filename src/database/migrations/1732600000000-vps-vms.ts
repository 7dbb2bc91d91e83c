import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Which driver reaches a hypervisor, and what a VM is made from (base image, host name, network). */
export class VpsVms1732600000000 implements MigrationInterface {
  name = 'VpsVms1732600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE hypervisors ADD COLUMN driver text NOT NULL DEFAULT 'libvirt-over-ssh' CHECK (driver IN ('libvirt-over-ssh', 'fake'))`);
    await q.query(`ALTER TABLE vms ADD COLUMN base_image text, ADD COLUMN hostname text, ADD COLUMN job_id uuid`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE vms DROP COLUMN base_image, DROP COLUMN hostname, DROP COLUMN job_id');
    await q.query('ALTER TABLE hypervisors DROP COLUMN driver');
  }
}
