import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What racksmith knows of each BMC (last power state, reachability, whether it enforces
 * privilege limits), power events, and customers' IPKVM grants.
 */
export class Bmc1732520000000 implements MigrationInterface {
  name = 'Bmc1732520000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE devices ADD COLUMN bmc_accept_privilege_risk boolean NOT NULL DEFAULT false`);
    await q.query(`
      CREATE TABLE bmc_status (
        device_id uuid PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
        power_state text CHECK (power_state IN ('on', 'off')),
        power_changed_at timestamptz,
        checked_at timestamptz,
        reachable boolean,
        error text,
        drift text,
        privilege_check text NOT NULL DEFAULT 'unknown' CHECK (privilege_check IN ('unknown', 'enforced', 'privilege-unsafe')),
        privilege_checked_at timestamptz
      )`);
    await q.query(`
      CREATE TABLE power_events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        device_id uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN ('action', 'changed', 'unreachable', 'recovered', 'drift')),
        action text,
        from_state text,
        to_state text,
        actor text NOT NULL,
        note text,
        at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query('CREATE INDEX power_events_device ON power_events (device_id, id DESC)');
    await q.query(`
      CREATE TABLE console_grants (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        device_id uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        site_id uuid NOT NULL REFERENCES sites (id),
        customer text NOT NULL,
        slot integer NOT NULL CHECK (slot BETWEEN 1 AND 63),
        username text NOT NULL,
        state text NOT NULL CHECK (state IN ('creating', 'active', 'revoke-pending', 'revoked', 'refused', 'failed')),
        console_token_hash text NOT NULL,
        expires_at timestamptz NOT NULL,
        risk_accepted boolean NOT NULL DEFAULT false,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        revoked_by text,
        revoke_reason text,
        revoke_attempts integer NOT NULL DEFAULT 0,
        last_error text
      )`);
    // One live account per BMC slot: two grants racing for a slot cannot both get it.
    await q.query(`CREATE UNIQUE INDEX console_grants_live_slot ON console_grants (device_id, slot) WHERE state IN ('creating', 'active', 'revoke-pending')`);
    await q.query(`CREATE INDEX console_grants_due ON console_grants (expires_at) WHERE state IN ('creating', 'active', 'revoke-pending')`);
    await q.query('CREATE INDEX console_grants_device ON console_grants (device_id, created_at DESC)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE console_grants');
    await q.query('DROP TABLE power_events');
    await q.query('DROP TABLE bmc_status');
    await q.query('ALTER TABLE devices DROP COLUMN bmc_accept_privilege_risk');
  }
}
