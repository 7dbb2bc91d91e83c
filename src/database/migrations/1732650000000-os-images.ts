import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * OS images for rented servers (the image-deploy path): a disk image an agent serves on its
 * provisioning network and the deploy ramdisk writes, checked by SHA-256 as it is written.
 */
export class OsImages1732650000000 implements MigrationInterface {
  name = 'OsImages1732650000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE os_images (
        name text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
        os text NOT NULL,
        format text NOT NULL CHECK (format IN ('raw', 'raw.gz')),
        file text NOT NULL,
        url text,
        sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        disk_bytes bigint NOT NULL CHECK (disk_bytes > 0),
        enabled boolean NOT NULL DEFAULT true,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    // An image install's first boot reports `booted` after the deploy's `done`.
    await q.query('ALTER TABLE install_callbacks DROP CONSTRAINT install_callbacks_status_check');
    await q.query(`ALTER TABLE install_callbacks ADD CONSTRAINT install_callbacks_status_check CHECK (status IN ('started', 'progress', 'done', 'failed', 'booted'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM install_callbacks WHERE status = 'booted'`);
    await q.query('ALTER TABLE install_callbacks DROP CONSTRAINT install_callbacks_status_check');
    await q.query(`ALTER TABLE install_callbacks ADD CONSTRAINT install_callbacks_status_check CHECK (status IN ('started', 'progress', 'done', 'failed'))`);
    await q.query('DROP TABLE os_images');
  }
}
