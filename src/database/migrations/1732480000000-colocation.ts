import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Colocation: a customer's equipment from announcement to removal, visit bookings, and the work
 * queue per site where tasks that need a person wait for the engineers on shift.
 */
export class Colocation1732480000000 implements MigrationInterface {
  name = 'Colocation1732480000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE colocation_items (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        site_id uuid NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
        device_id uuid NOT NULL UNIQUE REFERENCES devices (id) ON DELETE RESTRICT,
        customer_id text NOT NULL CHECK (length(customer_id) BETWEEN 1 AND 100),
        description text,
        install_by text NOT NULL CHECK (install_by IN ('owner', 'staff')),
        state text NOT NULL DEFAULT 'expected' CHECK (state IN ('expected', 'received', 'installed', 'removed')),
        received_at timestamptz,
        received_by text,
        received_location text CHECK (received_location IN ('data-center', 'delivery-point')),
        serials text[] NOT NULL DEFAULT '{}',
        condition text,
        installed_at timestamptz,
        installed_by text,
        removed_at timestamptz,
        removed_by text,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by text NOT NULL,
        CHECK (state = 'expected' OR received_at IS NOT NULL),
        CHECK (state NOT IN ('installed') OR installed_at IS NOT NULL),
        CHECK (state <> 'removed' OR removed_at IS NOT NULL)
      )`);
    await q.query('CREATE INDEX colocation_items_customer ON colocation_items (customer_id)');
    await q.query(`
      CREATE TABLE colocation_events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        item_id uuid NOT NULL REFERENCES colocation_items (id) ON DELETE CASCADE,
        step text NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        by text NOT NULL,
        details jsonb NOT NULL DEFAULT '{}'::jsonb
      )`);
    await q.query('CREATE INDEX colocation_events_item ON colocation_events (item_id, id)');

    await q.query(`
      CREATE TABLE visit_bookings (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        site_id uuid NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
        customer_id text NOT NULL CHECK (length(customer_id) BETWEEN 1 AND 100),
        starts_at timestamptz NOT NULL,
        ends_at timestamptz NOT NULL,
        visitors jsonb NOT NULL CHECK (jsonb_typeof(visitors) = 'array' AND jsonb_array_length(visitors) BETWEEN 1 AND 20),
        purpose text,
        state text NOT NULL DEFAULT 'requested' CHECK (state IN ('requested', 'approved', 'declined', 'cancelled')),
        decided_by text,
        decided_at timestamptz,
        decision_note text,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by text NOT NULL,
        CHECK (ends_at > starts_at),
        CHECK ((state IN ('approved', 'declined')) = (decided_at IS NOT NULL))
      )`);
    await q.query('CREATE INDEX visit_bookings_site ON visit_bookings (site_id, starts_at)');

    await q.query(`
      CREATE TABLE work_tasks (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        site_id uuid NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
        kind text NOT NULL CHECK (kind IN ('intake', 'staff-installation', 'removal', 'visit-approval', 'automation-failure', 'other')),
        title text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
        details jsonb NOT NULL DEFAULT '{}'::jsonb,
        ref_type text,
        ref_id text,
        state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'claimed', 'done', 'cancelled')),
        claimed_by text,
        claimed_at timestamptz,
        completed_by text,
        completed_at timestamptz,
        result text,
        created_at timestamptz NOT NULL DEFAULT now(),
        CHECK ((state = 'open') = (claimed_by IS NULL) OR state = 'cancelled'),
        CHECK ((state = 'done') = (completed_at IS NOT NULL) OR state = 'cancelled')
      )`);
    await q.query("CREATE INDEX work_tasks_queue ON work_tasks (site_id, created_at) WHERE state IN ('open', 'claimed')");
    await q.query('CREATE INDEX work_tasks_ref ON work_tasks (ref_type, ref_id)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE work_tasks, visit_bookings, colocation_events, colocation_items');
  }
}
