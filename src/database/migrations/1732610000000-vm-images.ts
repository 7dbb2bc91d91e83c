import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Base images VMs are made from (managed through the API; fetched onto a hypervisor's pool the
 * first time a VM there needs one), how each hypervisor runs its guests (kvm, or emulated qemu
 * where its /dev/kvm can't be trusted) and the bridge they attach to, and what the status sync last saw.
 */
export class VmImages1732610000000 implements MigrationInterface {
  name = 'VmImages1732610000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE vm_images (
        name text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
        os text NOT NULL CHECK (length(os) BETWEEN 1 AND 64),
        file text NOT NULL CHECK (file ~ '^[A-Za-z0-9._-]{1,128}$'),
        url text,
        sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        boot jsonb,
        min_disk_gb int NOT NULL DEFAULT 1 CHECK (min_disk_gb > 0),
        enabled boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK (url IS NULL OR sha256 IS NOT NULL)
      )`);
    await q.query(`ALTER TABLE hypervisors ADD COLUMN domain_type text NOT NULL DEFAULT 'auto' CHECK (domain_type IN ('auto', 'kvm', 'qemu')),
      ADD COLUMN bridge text CHECK (bridge ~ '^[A-Za-z0-9_.-]{1,15}$'), ADD COLUMN synced_at timestamptz, ADD COLUMN sync_error text`);
    await q.query(`ALTER TABLE vms DROP CONSTRAINT vms_state_check, ADD CONSTRAINT vms_state_check
      CHECK (state IN ('placed', 'creating', 'running', 'stopped', 'paused', 'rebuilding', 'error', 'missing', 'deleting', 'deleted', 'failed'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE vms DROP CONSTRAINT vms_state_check, ADD CONSTRAINT vms_state_check
      CHECK (state IN ('placed', 'creating', 'running', 'stopped', 'paused', 'deleting', 'deleted', 'failed'))`);
    await q.query('ALTER TABLE hypervisors DROP COLUMN domain_type, DROP COLUMN bridge, DROP COLUMN synced_at, DROP COLUMN sync_error');
    await q.query('DROP TABLE vm_images');
  }
}
