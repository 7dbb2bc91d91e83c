import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * BMC records real fleets need: a port of its own (a BMC behind NAT, a lab of simulators); named
 * credentials many BMCs share (`passwordRef`, kept encrypted like BMC passwords); and whether
 * racksmith ever reached the BMC with its current credentials. The power-state sync leaves out a
 * BMC without a password, and one that never answered with the credentials it has.
 */
export class BmcRecords1732670000000 implements MigrationInterface {
  name = 'BmcRecords1732670000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE devices ADD COLUMN bmc_port int CHECK (bmc_port BETWEEN 1 AND 65535)`);
    await q.query(`
      CREATE TABLE bmc_credentials (
        name text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9.-]{0,62}$'),
        secret_enc text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`ALTER TABLE devices ADD COLUMN bmc_password_ref text REFERENCES bmc_credentials(name) ON DELETE RESTRICT`);
    // checked: a BMC call with these credentials succeeded; check_failed: the sync's first try did not.
    await q.query(`ALTER TABLE devices ADD COLUMN bmc_checked_at timestamptz, ADD COLUMN bmc_check_failed_at timestamptz`);
    await q.query(`UPDATE devices d SET bmc_checked_at = s.checked_at FROM bmc_status s WHERE s.device_id = d.id AND s.reachable AND s.checked_at IS NOT NULL`);
    // New credentials (or a new address) are unchecked again.
    await q.query(`
      CREATE FUNCTION devices_bmc_unchecked() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.bmc_address IS DISTINCT FROM OLD.bmc_address OR NEW.bmc_port IS DISTINCT FROM OLD.bmc_port
           OR NEW.bmc_username IS DISTINCT FROM OLD.bmc_username OR NEW.bmc_password_enc IS DISTINCT FROM OLD.bmc_password_enc
           OR NEW.bmc_password_ref IS DISTINCT FROM OLD.bmc_password_ref
           OR NEW.bmc_driver IS DISTINCT FROM OLD.bmc_driver THEN
          NEW.bmc_checked_at := NULL;
          NEW.bmc_check_failed_at := NULL;
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER devices_bmc_unchecked BEFORE UPDATE ON devices FOR EACH ROW EXECUTE FUNCTION devices_bmc_unchecked()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER devices_bmc_unchecked ON devices');
    await q.query('DROP FUNCTION devices_bmc_unchecked()');
    await q.query('ALTER TABLE devices DROP COLUMN bmc_port, DROP COLUMN bmc_checked_at, DROP COLUMN bmc_check_failed_at, DROP COLUMN bmc_password_ref');
    await q.query('DROP TABLE bmc_credentials');
  }
}
