import type { MigrationInterface, QueryRunner } from 'typeorm';

/** What installers report back about an install job (its "wait for the installer" task reads it). */
export class Install1732510000000 implements MigrationInterface {
  name = 'Install1732510000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE install_callbacks (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        status text NOT NULL CHECK (status IN ('started', 'done', 'failed')),
        message text,
        at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query('CREATE INDEX install_callbacks_job ON install_callbacks (job_id, id)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE install_callbacks');
  }
}
