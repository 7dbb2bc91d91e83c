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

/** A server with a BMC, as the power-state sync reads it: everything needed to ask its BMC. */
export interface SyncTarget {
  id: string;
  name: string;
  site_id: string;
  lifecycle: string | null;
  maintenance: boolean;
  /** Reached with its current credentials before. */
  checked: boolean;
  address: string;
  port: number | null;
  driver: string;
  username: string | null;
  /** The sealed password: the device's own or its named credential's. */
  sealed: string | null;
  /** Why the sync leaves it out: no password set, or it never answered with the credentials it has. */
  why: 'no password' | 'never answered' | null;
}

/** One BMC's reading, as the sync records it: a state, or the error it met. */
export interface SyncReading {
  deviceId: string;
  state: PowerState | null;
  drift: string | null;
  error: string | null;
}

/** What was known of a BMC before a reading was recorded (all null: never seen). */
export interface SyncBefore {
  device_id: string;
  power_state: PowerState | null;
  reachable: boolean | null;
  drift: string | null;
}

/** What racksmith last saw of each BMC, and the power events of each server. */
@Injectable()
export class BmcStatusRepository {
  constructor(private readonly db: Database) {}

  async get(deviceId: string): Promise<BmcStatusRow | null> {
    const rows = await this.db.manager().query('SELECT * FROM bmc_status WHERE device_id = $1', [deviceId]);
    return rows[0] ?? null;
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
   * Every device with a BMC and a driver, optionally of some sites or some devices only, in one
   * query, each with its sealed password and `why` the sync leaves it out (if it does). A BMC
   * that never answered with its current credentials is tried once, by the first sync after they
   * were set; after that only when the devices are named (`ids`) or the credentials change.
   */
  syncTargets(filter: { siteIds?: string[]; ids?: string[] } = {}): Promise<SyncTarget[]> {
    return this.db.manager().query(
      `SELECT d.id, d.name, d.site_id, d.lifecycle, d.maintenance, d.bmc_checked_at IS NOT NULL AS checked,
              d.bmc_address AS address, d.bmc_port AS port, d.bmc_driver AS driver, d.bmc_username AS username,
              coalesce(c.secret_enc, d.bmc_password_enc) AS sealed,
              CASE WHEN d.bmc_password_enc IS NULL AND d.bmc_password_ref IS NULL THEN 'no password'
                   WHEN $2::uuid[] IS NULL AND d.bmc_checked_at IS NULL AND d.bmc_check_failed_at IS NOT NULL THEN 'never answered' END AS why
       FROM devices d LEFT JOIN bmc_credentials c ON c.name = d.bmc_password_ref
       WHERE d.bmc_address IS NOT NULL AND d.bmc_driver IS NOT NULL
         AND ($1::uuid[] IS NULL OR d.site_id = ANY($1)) AND ($2::uuid[] IS NULL OR d.id = ANY($2))
       ORDER BY d.name`,
      [filter.siteIds ?? null, filter.ids ?? null],
    );
  }

  /**
   * Records many readings in one statement (in device order, so two writers never wait on each
   * other in a circle) and returns what was known of each before, read in the same statement.
   * A failed reading keeps the last power state and drift and marks the BMC unreachable.
   */
  recordMany(readings: SyncReading[]): Promise<SyncBefore[]> {
    if (!readings.length) return Promise.resolve([]);
    const sorted = [...readings].sort((a, b) => (a.deviceId < b.deviceId ? -1 : 1));
    return this.db.manager().query(
      `WITH input AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS t(device_id, power_state, drift, error)),
       before AS (SELECT b.device_id, b.power_state, b.reachable, b.drift FROM bmc_status b JOIN input USING (device_id)),
       up AS (
         INSERT INTO bmc_status (device_id, power_state, power_changed_at, checked_at, reachable, error, drift)
         SELECT device_id, power_state, CASE WHEN error IS NULL THEN now() END, now(), error IS NULL, error, drift FROM input ORDER BY device_id
         ON CONFLICT (device_id) DO UPDATE SET
           power_changed_at = CASE WHEN EXCLUDED.reachable AND bmc_status.power_state IS DISTINCT FROM EXCLUDED.power_state THEN now() ELSE bmc_status.power_changed_at END,
           power_state = CASE WHEN EXCLUDED.reachable THEN EXCLUDED.power_state ELSE bmc_status.power_state END,
           drift = CASE WHEN EXCLUDED.reachable THEN EXCLUDED.drift ELSE bmc_status.drift END,
           checked_at = now(), reachable = EXCLUDED.reachable, error = EXCLUDED.error
         RETURNING device_id)
       SELECT i.device_id, b.power_state, b.reachable, b.drift FROM input i LEFT JOIN before b USING (device_id)
       WHERE EXISTS (SELECT 1 FROM up WHERE up.device_id = i.device_id)`,
      [sorted.map((r) => r.deviceId), sorted.map((r) => r.state), sorted.map((r) => r.drift), sorted.map((r) => r.error)],
    );
  }

  /** Many power events in one statement. */
  async addEvents(events: { deviceId: string; kind: PowerEventRow['kind']; from?: string | null; to?: string | null; actor: string; note?: string | null }[]): Promise<void> {
    if (!events.length) return;
    await this.db.manager().query(
      `INSERT INTO power_events (device_id, kind, from_state, to_state, actor, note)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])`,
      [events.map((e) => e.deviceId), events.map((e) => e.kind), events.map((e) => e.from ?? null), events.map((e) => e.to ?? null), events.map((e) => e.actor), events.map((e) => e.note ?? null)],
    );
  }

  /** Calls with the devices' current credentials succeeded (`ok`), or a first sync found them unreachable. */
  async markManyChecked(ok: string[], failed: string[]): Promise<void> {
    if (ok.length) await this.db.manager().query('UPDATE devices SET bmc_checked_at = now(), bmc_check_failed_at = NULL WHERE id = ANY($1) AND bmc_checked_at IS NULL', [ok]);
    if (failed.length) await this.db.manager().query('UPDATE devices SET bmc_check_failed_at = now() WHERE id = ANY($1) AND bmc_checked_at IS NULL AND bmc_check_failed_at IS NULL', [failed]);
  }

  /** A BMC call with the device's current credentials succeeded. */
  markChecked(deviceId: string): Promise<void> {
    return this.markManyChecked([deviceId], []);
  }
}
