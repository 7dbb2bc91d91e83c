import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A server's serial console may need another driver than the rest of its BMC: Redfish has no
 * standard console stream, so a Redfish server's console goes through IPMI SOL.
 */
export class BmcConsoleDriver1732530000000 implements MigrationInterface {
  name = 'BmcConsoleDriver1732530000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE devices ADD COLUMN bmc_console_driver text CHECK (bmc_console_driver IN ('ipmitool', 'redfish', 'fake'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE devices DROP COLUMN bmc_console_driver');
  }
}
