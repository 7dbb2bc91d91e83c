import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';

export interface CustomerRow {
  id: string;
  name: string;
  email: string | null;
  ssh_keys: string[];
  disabled_at: Date | null;
  disabled_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

export interface CustomerTokenRow {
  id: string;
  customer_id: string;
  name: string;
  kind: 'api' | 'session';
  prefix: string;
  created_at: Date;
  created_by: string;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
  revoked_by: string | null;
}

/** Customers, their tokens and their one-time login links. */
@Injectable()
export class CustomerRepository {
  constructor(private readonly db: Database) {}

  async get(id: string): Promise<CustomerRow | null> {
    return (await this.db.rows<CustomerRow>('SELECT * FROM customers WHERE id = $1', [id]))[0] ?? null;
  }

  /** Creates or updates; `created` says which. Fields left undefined keep their value. */
  async upsert(c: { id: string; name: string; email?: string | null; sshKeys?: string[] }): Promise<{ row: CustomerRow; created: boolean; before: CustomerRow | null }> {
    const before = (await this.db.rows<CustomerRow>('SELECT * FROM customers WHERE id = $1 FOR UPDATE', [c.id]))[0] ?? null;
    const [row] = await this.db.rows<CustomerRow>(
      `INSERT INTO customers (id, name, email, ssh_keys) VALUES ($1, $2, $3, $4::jsonb)
       ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,
         email = CASE WHEN $5 THEN EXCLUDED.email ELSE customers.email END,
         ssh_keys = CASE WHEN $6 THEN EXCLUDED.ssh_keys ELSE customers.ssh_keys END,
         updated_at = now()
       RETURNING *`,
      [c.id, c.name, c.email ?? null, JSON.stringify(c.sshKeys ?? []), c.email !== undefined, c.sshKeys !== undefined],
    );
    return { row: row!, created: !before, before };
  }

  async list(limit: number, afterId?: string, search?: string): Promise<CustomerRow[]> {
    return this.db.rows<CustomerRow>(
      `SELECT * FROM customers WHERE ($1::text IS NULL OR id > $1) AND ($2::text IS NULL OR id ILIKE $2 OR name ILIKE $2 OR email ILIKE $2)
       ORDER BY id LIMIT $3`,
      [afterId ?? null, search ? `%${search.replace(/[\\%_]/g, (m) => `\\${m}`)}%` : null, limit],
    );
  }

  async setDisabled(id: string, disabled: boolean, reason: string | null): Promise<CustomerRow | null> {
    return (
      (await this.db.rows<CustomerRow>(
        `UPDATE customers SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END, disabled_reason = CASE WHEN $2 THEN $3 END, updated_at = now()
         WHERE id = $1 RETURNING *`,
        [id, disabled, reason],
      ))[0] ?? null
    );
  }

  async insertToken(t: { customerId: string; name: string; kind: 'api' | 'session'; hash: string; prefix: string; createdBy: string; expiresAt: Date | null }): Promise<CustomerTokenRow> {
    const [row] = await this.db.rows<CustomerTokenRow>(
      `INSERT INTO customer_tokens (customer_id, name, kind, token_hash, prefix, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
       RETURNING id, customer_id, name, kind, prefix, created_at, created_by, expires_at, last_used_at, revoked_at, revoked_by`,
      [t.customerId, t.name, t.kind, t.hash, t.prefix, t.createdBy, t.expiresAt],
    );
    return row!;
  }

  /** The live token with this hash and its customer (disabled or not: the caller decides). */
  async findActiveToken(hash: string): Promise<{ id: string; customer_id: string; name: string; last_used_at: Date | null; disabled_at: Date | null } | null> {
    return (
      (await this.db.rows<{ id: string; customer_id: string; name: string; last_used_at: Date | null; disabled_at: Date | null }>(
        `SELECT t.id, t.customer_id, t.name, t.last_used_at, c.disabled_at FROM customer_tokens t JOIN customers c ON c.id = t.customer_id
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())`,
        [hash],
      ))[0] ?? null
    );
  }

  async touchToken(id: string): Promise<void> {
    await this.db.rows('UPDATE customer_tokens SET last_used_at = now() WHERE id = $1', [id]);
  }

  async tokens(customerId: string, includeRevoked: boolean): Promise<CustomerTokenRow[]> {
    return this.db.rows<CustomerTokenRow>(
      `SELECT id, customer_id, name, kind, prefix, created_at, created_by, expires_at, last_used_at, revoked_at, revoked_by FROM customer_tokens
       WHERE customer_id = $1 AND ($2 OR (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))) ORDER BY created_at, id`,
      [customerId, includeRevoked],
    );
  }

  async liveTokenCount(customerId: string): Promise<number> {
    const [r] = await this.db.rows<{ n: number }>(`SELECT count(*)::int AS n FROM customer_tokens WHERE customer_id = $1 AND kind = 'api' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`, [customerId]);
    return r!.n;
  }

  /** Revokes one of the customer's tokens; null when the customer has no such token. */
  async revokeToken(customerId: string, id: string, by: string): Promise<{ row: CustomerTokenRow; changed: boolean } | null> {
    const [changed] = await this.db.rows<CustomerTokenRow>(
      `UPDATE customer_tokens SET revoked_at = now(), revoked_by = $3 WHERE id = $2 AND customer_id = $1 AND revoked_at IS NULL
       RETURNING id, customer_id, name, kind, prefix, created_at, created_by, expires_at, last_used_at, revoked_at, revoked_by`,
      [customerId, id, by],
    );
    if (changed) return { row: changed, changed: true };
    const [row] = await this.db.rows<CustomerTokenRow>(
      'SELECT id, customer_id, name, kind, prefix, created_at, created_by, expires_at, last_used_at, revoked_at, revoked_by FROM customer_tokens WHERE id = $2 AND customer_id = $1',
      [customerId, id],
    );
    return row ? { row, changed: false } : null;
  }

  async revokeAllTokens(customerId: string, by: string): Promise<number> {
    const rows = await this.db.rows('UPDATE customer_tokens SET revoked_at = now(), revoked_by = $2 WHERE customer_id = $1 AND revoked_at IS NULL RETURNING id', [customerId, by]);
    return rows.length;
  }

  async insertLoginLink(l: { customerId: string; hash: string; createdBy: string; ttlSeconds: number }): Promise<{ expires_at: Date }> {
    const [row] = await this.db.rows<{ expires_at: Date }>(
      `INSERT INTO customer_login_links (code_hash, customer_id, created_by, expires_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at`,
      [l.hash, l.customerId, l.createdBy, l.ttlSeconds],
    );
    return row!;
  }

  /** Marks a live link used, once: the customer it belongs to, or null (unknown, used, expired). */
  async redeemLoginLink(hash: string): Promise<string | null> {
    const [row] = await this.db.rows<{ customer_id: string }>(
      `UPDATE customer_login_links SET used_at = now() WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING customer_id`,
      [hash],
    );
    return row?.customer_id ?? null;
  }

  /**
   * Takes the cooldown of one machine: true (and the action recorded) when its last customer power
   * action is older than `seconds`; otherwise the seconds left. Atomic across processes.
   */
  async takeCooldown(targetId: string, customerId: string, action: string, seconds: number): Promise<true | number> {
    const [row] = await this.db.rows<{ target_id: string }>(
      `INSERT INTO customer_power_actions (target_id, customer_id, action) VALUES ($1, $2, $3)
       ON CONFLICT (target_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, action = EXCLUDED.action, at = now()
         WHERE customer_power_actions.at <= now() - make_interval(secs => $4)
       RETURNING target_id`,
      [targetId, customerId, action, seconds],
    );
    if (row) return true;
    const [left] = await this.db.rows<{ s: number }>(`SELECT ceil(extract(epoch FROM at + make_interval(secs => $2) - now()))::int AS s FROM customer_power_actions WHERE target_id = $1`, [targetId, seconds]);
    return Math.max(1, left?.s ?? 1);
  }

  /** Gives the cooldown back (the action did not reach the machine). */
  async releaseCooldown(targetId: string): Promise<void> {
    await this.db.rows('DELETE FROM customer_power_actions WHERE target_id = $1', [targetId]);
  }
}
