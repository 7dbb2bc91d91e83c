import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The processes serving network boot, by site: each racksmith with a boot address (roles all and
 * agent) announces itself here and keeps `seen_at` fresh while it runs. An install, wipe or paid
 * order that needs a network boot at a site with none is refused before any power action.
 */
export class BootAgents1732660000000 implements MigrationInterface {
  name = 'BootAgents1732660000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE boot_agents (
        id uuid PRIMARY KEY,
        site_id uuid REFERENCES sites(id) ON DELETE CASCADE,
        address text NOT NULL,
        http_base text NOT NULL,
        services jsonb NOT NULL DEFAULT '{}',
        started_at timestamptz NOT NULL DEFAULT now(),
        seen_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query('CREATE INDEX boot_agents_site ON boot_agents (site_id, seen_at)');
    await q.query(`COMMENT ON COLUMN boot_agents.site_id IS 'NULL: a process of role all, which serves every site'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE boot_agents');
  }
}
