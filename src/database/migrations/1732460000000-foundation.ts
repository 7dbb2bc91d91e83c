import type { MigrationInterface, QueryRunner } from 'typeorm';

export class Foundation1732460000000 implements MigrationInterface {
  name = 'Foundation1732460000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE api_tokens (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
        role text NOT NULL CHECK (role IN ('admin', 'engineer', 'support', 'billing', 'readonly')),
        token_hash text NOT NULL UNIQUE,
        prefix text NOT NULL,
        -- millisecond precision, so a JavaScript Date in a page cursor names the row exactly
        created_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        created_by text NOT NULL,
        expires_at timestamptz,
        last_used_at timestamptz,
        revoked_at timestamptz,
        revoked_by text
      )`);
    await q.query(`
      CREATE TABLE audit_events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        source text NOT NULL CHECK (source IN ('api', 'cli', 'system')),
        actor text NOT NULL,
        actor_kind text NOT NULL,
        actor_id text,
        actor_role text,
        action text NOT NULL,
        target_type text NOT NULL,
        target_id text,
        request_id text,
        changes jsonb NOT NULL DEFAULT '{}'::jsonb
      )`);
    await q.query('CREATE INDEX audit_events_target ON audit_events (target_type, target_id, id)');
    await q.query('CREATE INDEX audit_events_action ON audit_events (action, id)');
    await q.query('CREATE INDEX audit_events_actor ON audit_events (actor, id)');
    await q.query('CREATE INDEX audit_events_at ON audit_events (at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE audit_events');
    await q.query('DROP TABLE api_tokens');
  }
}
