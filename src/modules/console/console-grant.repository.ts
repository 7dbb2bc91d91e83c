import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';

export type GrantState = 'creating' | 'active' | 'revoke-pending' | 'revoked' | 'refused' | 'failed';
export const LIVE_STATES: GrantState[] = ['creating', 'active', 'revoke-pending'];

export interface GrantRow {
  id: string;
  device_id: string;
  site_id: string;
  customer: string;
  slot: number;
  username: string;
  state: GrantState;
  console_token_hash: string;
  expires_at: Date;
  risk_accepted: boolean;
  created_by: string;
  created_at: Date;
  revoked_at: Date | null;
  revoked_by: string | null;
  revoke_reason: string | null;
  revoke_attempts: number;
  last_error: string | null;
}

/** A grant whose account must go, and why. */
export interface DueGrant {
  id: string;
  device_id: string;
  reason: string;
}

/** IPKVM grants: which BMC account in which slot belongs to whom until when. */
@Injectable()
export class ConsoleGrantRepository {
  constructor(private readonly db: Database) {}

  private q<T = GrantRow>(sql: string, params: unknown[]): Promise<T[]> {
    return this.db.rows<T>(sql, params);
  }

  async get(id: string): Promise<GrantRow | null> {
    return (await this.q('SELECT * FROM console_grants WHERE id = $1', [id]))[0] ?? null;
  }

  /** Slots of the device held by a grant that still has (or may have) its account. */
  async liveSlots(deviceId: string): Promise<Set<number>> {
    const rows = await this.q<{ slot: number }>('SELECT slot FROM console_grants WHERE device_id = $1 AND state = ANY($2)', [deviceId, LIVE_STATES]);
    return new Set(rows.map((r) => r.slot));
  }

  async liveByDevice(deviceId: string): Promise<GrantRow[]> {
    return this.q('SELECT * FROM console_grants WHERE device_id = $1 AND state = ANY($2)', [deviceId, LIVE_STATES]);
  }

  async insert(g: { deviceId: string; siteId: string; customer: string; slot: number; username: string; tokenHash: string; ttlSeconds: number; createdBy: string }): Promise<GrantRow> {
    const [row] = await this.q(
      `INSERT INTO console_grants (device_id, site_id, customer, slot, username, state, console_token_hash, expires_at, created_by)
       VALUES ($1, $2, $3, $4, $5, 'creating', $6, now() + make_interval(secs => $7), $8) RETURNING *`,
      [g.deviceId, g.siteId, g.customer, g.slot, g.username, g.tokenHash, g.ttlSeconds, g.createdBy],
    );
    return row!;
  }

  async activate(id: string, riskAccepted: boolean): Promise<GrantRow> {
    const [row] = await this.q(`UPDATE console_grants SET state = 'active', risk_accepted = $2 WHERE id = $1 RETURNING *`, [id, riskAccepted]);
    return row!;
  }

  /** The account is gone (or never was): a final state. */
  async finish(id: string, state: 'revoked' | 'refused' | 'failed', by: string, reason: string, error: string | null = null): Promise<GrantRow> {
    const [row] = await this.q(
      `UPDATE console_grants SET state = $2, revoked_at = now(), revoked_by = $3, revoke_reason = $4, last_error = coalesce($5, last_error) WHERE id = $1 RETURNING *`,
      [id, state, by, reason, error],
    );
    return row!;
  }

  /** Removing the account failed; the reconciler tries again. Returns the attempts so far. */
  async revokeFailed(id: string, by: string, reason: string, error: string): Promise<GrantRow> {
    const [row] = await this.q(
      `UPDATE console_grants SET state = 'revoke-pending', revoked_by = coalesce(revoked_by, $2), revoke_reason = coalesce(revoke_reason, $3),
         revoke_attempts = revoke_attempts + 1, last_error = $4 WHERE id = $1 RETURNING *`,
      [id, by, reason, error],
    );
    return row!;
  }

  async extend(id: string, ttlSeconds: number): Promise<GrantRow | null> {
    const [row] = await this.q(`UPDATE console_grants SET expires_at = now() + make_interval(secs => $2) WHERE id = $1 AND state = 'active' RETURNING *`, [id, ttlSeconds]);
    return row ?? null;
  }

  async list(filter: { deviceId?: string; customer?: string; live?: boolean }, limit: number): Promise<GrantRow[]> {
    return this.q(
      `SELECT * FROM console_grants WHERE ($1::uuid IS NULL OR device_id = $1) AND ($2::text IS NULL OR customer = $2) AND (NOT $3::boolean OR state = ANY($4))
       ORDER BY created_at DESC LIMIT $5`,
      [filter.deviceId ?? null, filter.customer ?? null, filter.live ?? false, LIVE_STATES, limit],
    );
  }

  /**
   * Grants whose account must go now: expired, on a server that was suspended, wiped or retired,
   * a revocation that failed before, or a creation that never finished (a crash half-way).
   */
  due(siteIds: string[] | null, creatingStaleSeconds: number): Promise<DueGrant[]> {
    return this.q<DueGrant>(
      `SELECT g.id, g.device_id,
         CASE WHEN g.state = 'revoke-pending' THEN coalesce(g.revoke_reason, 'revocation pending')
              WHEN g.state = 'creating' THEN 'creation did not finish'
              WHEN d.lifecycle IN ('suspended', 'wiping', 'retired', 'available') THEN 'server ' || d.lifecycle
              ELSE 'expired' END AS reason
       FROM console_grants g JOIN devices d ON d.id = g.device_id
       WHERE ($1::uuid[] IS NULL OR g.site_id = ANY($1))
         AND (g.state = 'revoke-pending'
              OR (g.state = 'creating' AND g.created_at < now() - make_interval(secs => $2))
              OR (g.state = 'active' AND (g.expires_at <= now() OR d.lifecycle IN ('suspended', 'wiping', 'retired', 'available'))))
       ORDER BY g.expires_at`,
      [siteIds, creatingStaleSeconds],
    );
  }

  /** Active grants that end within the next `seconds` (their expiry timers are armed from this). */
  activeEndingWithin(siteIds: string[] | null, seconds: number): Promise<{ id: string; expires_at: Date }[]> {
    return this.q(
      `SELECT id, expires_at FROM console_grants WHERE state = 'active' AND ($1::uuid[] IS NULL OR site_id = ANY($1))
         AND expires_at <= now() + make_interval(secs => $2) ORDER BY expires_at`,
      [siteIds, seconds],
    );
  }

  /** Devices on whose BMC racksmith has created an account (ever, or with a grant touched in the last `withinSeconds`). */
  async devicesWithGrants(siteIds: string[] | null, withinSeconds: number | null): Promise<string[]> {
    const rows = await this.q<{ device_id: string }>(
      `SELECT DISTINCT device_id FROM console_grants WHERE ($1::uuid[] IS NULL OR site_id = ANY($1))
         AND ($2::int IS NULL OR state = ANY($3) OR greatest(created_at, revoked_at) > now() - make_interval(secs => $2))`,
      [siteIds, withinSeconds, LIVE_STATES],
    );
    return rows.map((r) => r.device_id);
  }
}
