import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Customers as first-class records (issue 18): the billing system's customer id (the same text
 * as orders.customer, vms.customer, devices.customer_id), name, contact and SSH keys; their API
 * tokens (made by staff or the billing system, or by the customer for themselves, always bound
 * to that one customer); and one-time login links that turn into a short-lived session token.
 */
export class Customers1732690000000 implements MigrationInterface {
  name = 'Customers1732690000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE customers (
        id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$'),
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        email text CHECK (length(email) BETWEEN 3 AND 254),
        ssh_keys jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(ssh_keys) = 'array'),
        disabled_at timestamptz,
        disabled_reason text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE customer_tokens (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
        kind text NOT NULL CHECK (kind IN ('api', 'session')),
        token_hash text NOT NULL UNIQUE,
        prefix text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        created_by text NOT NULL,
        expires_at timestamptz,
        last_used_at timestamptz,
        revoked_at timestamptz,
        revoked_by text
      )`);
    await q.query('CREATE INDEX customer_tokens_customer ON customer_tokens (customer_id, created_at, id)');
    await q.query(`
      CREATE TABLE customer_login_links (
        code_hash text PRIMARY KEY,
        customer_id text NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        used_at timestamptz
      )`);
    // Customer power actions remember when they last acted on a machine (the cooldown).
    await q.query(`
      CREATE TABLE customer_power_actions (
        target_id uuid PRIMARY KEY,
        customer_id text NOT NULL,
        action text NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE customer_power_actions');
    await q.query('DROP TABLE customer_login_links');
    await q.query('DROP TABLE customer_tokens');
    await q.query('DROP TABLE customers');
  }
}
