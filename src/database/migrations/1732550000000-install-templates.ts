import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Engineers' own install templates: every change a new version; the newest is the one used. */
export class InstallTemplates1732550000000 implements MigrationInterface {
  name = 'InstallTemplates1732550000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE install_templates (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        os text NOT NULL,
        file text NOT NULL CHECK (file ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
        version int NOT NULL CHECK (version >= 1),
        body text NOT NULL CHECK (length(body) <= 262144),
        note text,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (os, file, version)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE install_templates');
  }
}
