import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';
import type { PowerState } from '../../drivers/bmc/bmc-driver';

export interface BmcStatusRow {
  device_id: string;
  power_state: PowerState | null;
  power_changed_at: Date | null;
  checked_at: Date | null;
  reachable: boolean | null;
  error: string | null;
  drift: string | null;
  privilege_check: 'unknown' | 'enforced' | 'privilege-unsafe';
  privilege_checked_at: Date | null;
}

export interface PowerEventRow {
  id: string;
  device_id: string;
  kind: 'action' | 'changed' | 'unreachable' | 'recovered' | 'drift';
  action: string | null;
  from_state: string | null;
  to_state: string | null;
  actor: string;
  note: string | null;
  at: Date;
}

/** A server the power-state sync asks about. */
export interface SyncTarget {
  id: string;
  name: string;
  site_id: string;
  lifecycle: string | null;
  maintenance: boolean;
  /** Reached with its current credentials before. */
  checked: boolean;
}

/** What racksmith last saw of each BMC, and the power events of each server. */
@Injectable()
export class BmcStatusRepository {
  constructor(private readonly db: Database) {}

  async get(deviceId: string): Promise<BmcStatusRow | null> {
    const rows = await this.db.manager().query('SELECT * FROM bmc_status WHERE device_id = $1', [deviceId]);
    return rows[0] ?? null;
  }

  /**
   * Records a successful read. Returns what was known before (null: first time), so the caller
   * can tell a change, a recovery or a new drift from more of the same.
   */
  async recordPower(deviceId: string, state: PowerState, drift: string | null): Promise<{ power_state: PowerState | null; reachable: boolean | null; drift: string | null } | null> {
    const rows = await this.db.manager().query(
      `WITH before AS (SELECT power_state, reachable, drift FROM bmc_status WHERE device_id = $1),
       up AS (
         INSERT INTO bmc_status (device_id, power_state, power_changed_at, checked_at, reachable, error, drift)
         VALUES ($1, $2, now(), now(), true, NULL, $3)
         ON CONFLICT (device_id) DO UPDATE SET
           power_changed_at = CASE WHEN bmc_status.power_state IS DISTINCT FROM EXCLUDED.power_state THEN now() ELSE bmc_status.power_changed_at END,
           power_state = EXCLUDED.power_state, checked_at = now(), reachable = true, error = NULL, drift = EXCLUDED.drift
         RETURNING device_id)
       SELECT b.* FROM up LEFT JOIN before b ON true`,
      [deviceId, state, drift],
    );
    const b = rows[0];
    return b && (b.power_state !== null || b.reachable !== null) ? { power_state: b.power_state, reachable: b.reachable, drift: b.drift } : null;
  }

  /** Records a failed read; returns whether the BMC was reachable before (null: never checked). */
  async recordUnreachable(deviceId: string, error: string): Promise<boolean | null> {
    const rows = await this.db.manager().query(
      `WITH before AS (SELECT reachable FROM bmc_status WHERE device_id = $1),
       up AS (
         INSERT INTO bmc_status (device_id, checked_at, reachable, error) VALUES ($1, now(), false, $2)
         ON CONFLICT (device_id) DO UPDATE SET checked_at = now(), reachable = false, error = EXCLUDED.error
         RETURNING device_id)
       SELECT b.reachable FROM up LEFT JOIN before b ON true`,
      [deviceId, error],
    );
    return rows[0]?.reachable ?? null;
  }

  async setPrivilegeCheck(deviceId: string, result: 'enforced' | 'privilege-unsafe'): Promise<void> {
    await this.db.manager().query(
      `INSERT INTO bmc_status (device_id, privilege_check, privilege_checked_at) VALUES ($1, $2, now())
       ON CONFLICT (device_id) DO UPDATE SET privilege_check = EXCLUDED.privilege_check, privilege_checked_at = now()`,
      [deviceId, result],
    );
  }

  async addEvent(deviceId: string, e: { kind: PowerEventRow['kind']; action?: string; from?: string | null; to?: string | null; actor: string; note?: string | null }): Promise<void> {
    await this.db
      .manager()
      .query('INSERT INTO power_events (device_id, kind, action, from_state, to_state, actor, note) VALUES ($1, $2, $3, $4, $5, $6, $7)', [deviceId, e.kind, e.action ?? null, e.from ?? null, e.to ?? null, e.actor, e.note ?? null]);
  }

  events(deviceId: string, limit: number): Promise<PowerEventRow[]> {
    return this.db.manager().query('SELECT * FROM power_events WHERE device_id = $1 ORDER BY id DESC LIMIT $2', [deviceId, limit]);
  }

  /** The server's lifecycle state (null for other devices or none). */
  async lifecycle(deviceId: string): Promise<string | null> {
    const rows = await this.db.manager().query('SELECT lifecycle FROM devices WHERE id = $1', [deviceId]);
    return rows[0]?.lifecycle ?? null;
  }

  /**
   * Every device with a BMC, a driver and a password, optionally of some sites or some devices
   * only. A BMC that never answered with its current credentials is tried once, by the first sync
   * after they were set; after that only when the devices are named (`ids`) or the credentials change.
   */
  syncTargets(filter: { siteIds?: string[]; ids?: string[] } = {}): Promise<SyncTarget[]> {
    return this.db.manager().query(
      `SELECT id, name, site_id, lifecycle, maintenance, bmc_checked_at IS NOT NULL AS checked FROM devices
       WHERE bmc_address IS NOT NULL AND bmc_driver IS NOT NULL AND (bmc_password_enc IS NOT NULL OR bmc_password_ref IS NOT NULL)
         AND ($2::uuid[] IS NOT NULL OR bmc_checked_at IS NOT NULL OR bmc_check_failed_at IS NULL)
         AND ($1::uuid[] IS NULL OR site_id = ANY($1)) AND ($2::uuid[] IS NULL OR id = ANY($2))
       ORDER BY name`,
      [filter.siteIds ?? null, filter.ids ?? null],
    );
  }

  /** The BMCs the sync leaves out, and why: no password set, or never answered with the credentials they have. */
  unsynced(filter: { siteIds?: string[] } = {}): Promise<{ id: string; name: string; address: string; why: 'no password' | 'never answered' }[]> {
    return this.db.manager().query(
      `SELECT id, name, bmc_address AS address, CASE WHEN bmc_password_enc IS NULL AND bmc_password_ref IS NULL THEN 'no password' ELSE 'never answered' END AS why FROM devices
       WHERE bmc_address IS NOT NULL AND bmc_driver IS NOT NULL
         AND ((bmc_password_enc IS NULL AND bmc_password_ref IS NULL) OR (bmc_checked_at IS NULL AND bmc_check_failed_at IS NOT NULL))
         AND ($1::uuid[] IS NULL OR site_id = ANY($1))
       ORDER BY name`,
      [filter.siteIds ?? null],
    );
  }

  /** A BMC call with the device's current credentials succeeded. */
  async markChecked(deviceId: string): Promise<void> {
    await this.db.manager().query('UPDATE devices SET bmc_checked_at = now(), bmc_check_failed_at = NULL WHERE id = $1 AND bmc_checked_at IS NULL', [deviceId]);
  }

  /** The first sync of a BMC never checked found it unreachable: scheduled syncs leave it until its credentials change. */
  async markCheckFailed(deviceId: string): Promise<void> {
    await this.db.manager().query('UPDATE devices SET bmc_check_failed_at = now() WHERE id = $1 AND bmc_checked_at IS NULL AND bmc_check_failed_at IS NULL', [deviceId]);
  }
}
