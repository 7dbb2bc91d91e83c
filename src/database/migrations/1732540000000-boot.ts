import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Network boot: provisioning networks racksmith's DHCP answers for (authoritative mode), the
 * address each server's NIC has reserved on them, and the leases handed out.
 */
export class Boot1732540000000 implements MigrationInterface {
  name = 'Boot1732540000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE boot_networks (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        site_id uuid NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
        cidr cidr NOT NULL,
        gateway inet,
        dns inet[] NOT NULL DEFAULT '{}',
        domain text,
        lease_seconds int NOT NULL DEFAULT 3600 CHECK (lease_seconds BETWEEN 60 AND 604800),
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (site_id, name),
        CHECK (gateway IS NULL OR gateway << cidr)
      )`);
    // Two networks never overlap: an address belongs to one of them (GiST inet_ops is built in).
    await q.query('ALTER TABLE boot_networks ADD CONSTRAINT boot_networks_no_overlap EXCLUDE USING gist (cidr inet_ops WITH &&)');
    await q.query('ALTER TABLE nics ADD COLUMN ip inet');
    await q.query('CREATE UNIQUE INDEX nics_ip_key ON nics (ip) WHERE ip IS NOT NULL');
    await q.query(`
      CREATE TABLE dhcp_leases (
        mac macaddr NOT NULL,
        network_id uuid NOT NULL REFERENCES boot_networks (id) ON DELETE CASCADE,
        ip inet NOT NULL,
        device_id uuid REFERENCES devices (id) ON DELETE SET NULL,
        state text NOT NULL CHECK (state IN ('bound', 'released', 'declined')),
        expires_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (mac, network_id)
      )`);

    // Installers report progress as they go, not only started/done/failed.
    await q.query('ALTER TABLE install_callbacks DROP CONSTRAINT install_callbacks_status_check');
    await q.query(`ALTER TABLE install_callbacks ADD CONSTRAINT install_callbacks_status_check CHECK (status IN ('started', 'progress', 'done', 'failed'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM install_callbacks WHERE status = 'progress'`);
    await q.query('ALTER TABLE install_callbacks DROP CONSTRAINT install_callbacks_status_check');
    await q.query(`ALTER TABLE install_callbacks ADD CONSTRAINT install_callbacks_status_check CHECK (status IN ('started', 'done', 'failed'))`);
    await q.query('DROP TABLE dhcp_leases');
    await q.query('DROP INDEX nics_ip_key');
    await q.query('ALTER TABLE nics DROP COLUMN ip');
    await q.query('DROP TABLE boot_networks');
  }
}
