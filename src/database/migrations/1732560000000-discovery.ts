import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Machines that asked to network-boot while racksmith did not know their MAC (discovery). */
export class Discovery1732560000000 implements MigrationInterface {
  name = 'Discovery1732560000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE discovered_macs (
        mac macaddr PRIMARY KEY,
        first_seen timestamptz NOT NULL DEFAULT now(),
        last_seen timestamptz NOT NULL DEFAULT now(),
        requests int NOT NULL DEFAULT 1,
        arch int,
        vendor_class text
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE discovered_macs');
  }
}
