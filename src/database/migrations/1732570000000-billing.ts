import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Billing: plans, the webhook inbox (keyed by the billing system's event id, written before the
 * answer), orders (one row per billing order, holding at most one live server) and the outbox of
 * events for the billing system (kept until it acknowledges them).
 */
export class Billing1732570000000 implements MigrationInterface {
  name = 'Billing1732570000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE billing_plans (
        code text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
        kind text NOT NULL CHECK (kind IN ('dedicated', 'vps', 'colocation')),
        spec jsonb NOT NULL,
        description text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE billing_events (
        id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
        type text NOT NULL CHECK (type IN ('order.paid', 'order.suspended', 'order.unsuspended', 'order.terminated')),
        order_id text NOT NULL,
        occurred_at timestamptz NOT NULL,
        payload jsonb NOT NULL,
        body_sha256 text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        request_id text,
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'processed', 'ignored', 'failed')),
        attempts int NOT NULL DEFAULT 0,
        not_before timestamptz NOT NULL DEFAULT now(),
        processed_at timestamptz,
        result text
      )`);
    await q.query(`CREATE INDEX billing_events_pending ON billing_events (occurred_at, received_at) WHERE state = 'pending'`);
    await q.query('CREATE INDEX billing_events_order ON billing_events (order_id, occurred_at)');
    await q.query(`
      CREATE TABLE orders (
        id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
        customer text NOT NULL,
        plan text,
        kind text CHECK (kind IN ('dedicated', 'vps', 'colocation')),
        plan_spec jsonb,
        options jsonb NOT NULL DEFAULT '{}',
        state text NOT NULL CHECK (state IN ('unpaid', 'backordered', 'provisioning', 'active', 'suspending', 'suspended', 'unsuspending', 'terminating', 'terminated', 'failed')),
        site_id uuid REFERENCES sites (id),
        server_id uuid REFERENCES devices (id) ON DELETE SET NULL,
        job_id uuid,
        install_job_id uuid,
        access_enc text,
        suspend_requested boolean NOT NULL DEFAULT false,
        state_event_at timestamptz,
        last_error text,
        paid_at timestamptz,
        backordered_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    // No server is held by two live orders, whatever the code above does.
    await q.query(`CREATE UNIQUE INDEX orders_one_per_server ON orders (server_id) WHERE server_id IS NOT NULL AND state NOT IN ('terminated', 'failed')`);
    await q.query(`CREATE INDEX orders_backordered ON orders (backordered_at) WHERE state = 'backordered'`);
    await q.query('CREATE INDEX orders_customer ON orders (customer)');
    await q.query(`
      CREATE TABLE billing_outbox (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        order_id text NOT NULL,
        type text NOT NULL,
        payload jsonb NOT NULL,
        secrets_enc text,
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered')),
        attempts int NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        last_status int,
        last_error text,
        delivered_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX billing_outbox_due ON billing_outbox (next_attempt_at) WHERE state = 'pending'`);
    await q.query('CREATE INDEX billing_outbox_order ON billing_outbox (order_id, created_at)');
    await q.query('ALTER TABLE work_tasks DROP CONSTRAINT work_tasks_kind_check');
    await q.query(`ALTER TABLE work_tasks ADD CONSTRAINT work_tasks_kind_check CHECK (kind IN ('intake', 'staff-installation', 'removal', 'visit-approval', 'automation-failure', 'backorder', 'other'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM work_tasks WHERE kind = 'backorder'`);
    await q.query('ALTER TABLE work_tasks DROP CONSTRAINT work_tasks_kind_check');
    await q.query(`ALTER TABLE work_tasks ADD CONSTRAINT work_tasks_kind_check CHECK (kind IN ('intake', 'staff-installation', 'removal', 'visit-approval', 'automation-failure', 'other'))`);
    await q.query('DROP TABLE billing_outbox');
    await q.query('DROP TABLE orders');
    await q.query('DROP TABLE billing_events');
    await q.query('DROP TABLE billing_plans');
  }
}
