import { Injectable } from '@nestjs/common';
import { bootServedSql } from '../boot/boot-agents.repository';
import { Database } from '../../database/database';
import type { EventType, PlanKind } from './billing.schemas';

export interface PlanRow {
  code: string;
  kind: PlanKind;
  spec: Record<string, any>;
  description: string | null;
  created_at: Date;
  updated_at: Date;
}

export interface EventRow {
  id: string;
  type: EventType;
  order_id: string;
  occurred_at: Date;
  payload: Record<string, any>;
  body_sha256: string;
  received_at: Date;
  request_id: string | null;
  state: 'pending' | 'processed' | 'ignored' | 'failed';
  attempts: number;
  processed_at: Date | null;
  result: string | null;
}

export const ORDER_STATES = ['unpaid', 'backordered', 'provisioning', 'active', 'suspending', 'suspended', 'unsuspending', 'terminating', 'terminated', 'failed'] as const;
export type OrderState = (typeof ORDER_STATES)[number];

export interface OrderRow {
  id: string;
  customer: string;
  plan: string | null;
  kind: PlanKind | null;
  plan_spec: Record<string, any> | null;
  options: Record<string, any>;
  state: OrderState;
  site_id: string | null;
  server_id: string | null;
  vm_id: string | null;
  job_id: string | null;
  install_job_id: string | null;
  access_enc: string | null;
  suspend_requested: boolean;
  state_event_at: Date | null;
  last_error: string | null;
  paid_at: Date | null;
  backordered_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface OutboxRow {
  id: string;
  order_id: string;
  type: string;
  payload: Record<string, any>;
  secrets_enc: string | null;
  state: 'pending' | 'delivered';
  attempts: number;
  next_attempt_at: Date;
  last_status: number | null;
  last_error: string | null;
  delivered_at: Date | null;
  created_at: Date;
}

type OrderChanges = Partial<Omit<OrderRow, 'id' | 'created_at' | 'updated_at'>>;

/** Plans, the webhook inbox, orders and the outbox (raw SQL: the queries are the point). */
export interface ServerSpec {
  hardwareModel?: string;
  minCpuCores?: number;
  minRamGb?: number;
  minDiskGb?: number;
  sites?: string[];
  minLargestDiskBytes?: number;
  /** The plan hands out IPKVM: only servers with a BMC not known to be privilege-unsafe (unless it accepts the risk). */
  console?: boolean;
  /** Servers already found unfit (a console probe failed). */
  excludeIds?: string[];
}

/** Available rented servers matching a plan ($1..$5, $7..$9), free of any live order. */
const MATCHING_SERVERS = `FROM devices d JOIN hardware_models m ON m.id = d.model_id JOIN sites s ON s.id = d.site_id
        LEFT JOIN bmc_status bs ON bs.device_id = d.id
        WHERE d.role = 'rented-server' AND d.lifecycle = 'available' AND NOT d.maintenance
          AND ($8::boolean IS NOT TRUE OR (d.bmc_address IS NOT NULL AND (d.bmc_accept_privilege_risk OR coalesce(bs.privilege_check, 'unknown') <> 'privilege-unsafe')))
          AND NOT (d.id = ANY ($9::uuid[]))
          AND ($1::text IS NULL OR lower(m.vendor || '/' || m.model) = lower($1))
          AND ($2::int IS NULL OR m.cpu_cores >= $2)
          AND ($3::int IS NULL OR m.ram_gb >= $3)
          AND ($4::int IS NULL OR (SELECT coalesce(sum((x->>'sizeGb')::int * (x->>'count')::int), 0) FROM jsonb_array_elements(m.disks) x) >= $4)
          AND ($5::text[] IS NULL OR s.code = ANY ($5))
          AND ($7::bigint IS NULL OR coalesce((SELECT max((x->>'sizeGb')::bigint) * 1000000000 FROM jsonb_array_elements(m.disks) x) >= $7, true))
          AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.server_id = d.id AND o.state NOT IN ('terminated', 'failed'))`;

export interface MatchedServer {
  id: string;
  name: string;
  site_id: string;
  site_code: string;
  privilege_check: 'unknown' | 'enforced' | 'privilege-unsafe';
}

/** The parameters of MATCHING_SERVERS; `sixth` is the caller's own $6. */
function matchingParams(spec: ServerSpec, sixth: unknown): unknown[] {
  return [spec.hardwareModel ?? null, spec.minCpuCores ?? null, spec.minRamGb ?? null, spec.minDiskGb ?? null, spec.sites?.length ? spec.sites : null, sixth, spec.minLargestDiskBytes ?? null, !!spec.console, spec.excludeIds ?? []];
}

@Injectable()
export class BillingRepository {
  constructor(private readonly db: Database) {}

  // ---- plans

  plan(code: string): Promise<PlanRow | undefined> {
    return this.db.rows<PlanRow>('SELECT * FROM billing_plans WHERE code = $1', [code]).then((r) => r[0]);
  }

  plans(): Promise<PlanRow[]> {
    return this.db.rows<PlanRow>('SELECT * FROM billing_plans ORDER BY code');
  }

  async upsertPlan(p: { code: string; kind: PlanKind; spec: unknown; description?: string | null }): Promise<{ row: PlanRow; created: boolean }> {
    const [row] = await this.db.rows<PlanRow & { created: boolean }>(
      `INSERT INTO billing_plans (code, kind, spec, description) VALUES ($1, $2, $3, $4)
       ON CONFLICT (code) DO UPDATE SET kind = EXCLUDED.kind, spec = EXCLUDED.spec, description = EXCLUDED.description, updated_at = now()
       RETURNING *, (xmax = 0) AS created`,
      [p.code, p.kind, JSON.stringify(p.spec), p.description ?? null],
    );
    const { created, ...plan } = row;
    return { row: plan, created };
  }

  async deletePlan(code: string): Promise<boolean> {
    return (await this.db.rows('DELETE FROM billing_plans WHERE code = $1 RETURNING code', [code])).length > 0;
  }

  // ---- inbox

  /** Store an event unless its id is known. The body hash of the stored one, and whether this call stored it. */
  async insertEvent(e: { id: string; type: EventType; orderId: string; occurredAt: string; payload: unknown; bodySha256: string; requestId: string | null }): Promise<{ stored: boolean; bodySha256: string }> {
    const [row] = await this.db.rows<{ stored: boolean; body_sha256: string }>(
      `WITH ins AS (
         INSERT INTO billing_events (id, type, order_id, occurred_at, payload, body_sha256, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING body_sha256)
       SELECT true AS stored, body_sha256 FROM ins
       UNION ALL SELECT false, body_sha256 FROM billing_events WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM ins)`,
      [e.id, e.type, e.orderId, e.occurredAt, JSON.stringify(e.payload), e.bodySha256, e.requestId],
    );
    if (row) return { stored: row.stored, bodySha256: row.body_sha256 };
    // The other insert had not committed when this statement's snapshot was taken.
    const [again] = await this.db.rows<{ body_sha256: string }>('SELECT body_sha256 FROM billing_events WHERE id = $1', [e.id]);
    return { stored: false, bodySha256: again.body_sha256 };
  }

  /** Due events, oldest first, locked for the caller's transaction (others skip them). */
  claimEvents(limit: number): Promise<EventRow[]> {
    return this.db.rows<EventRow>(`SELECT * FROM billing_events WHERE state = 'pending' AND not_before <= now() ORDER BY occurred_at, received_at LIMIT $1 FOR UPDATE SKIP LOCKED`, [limit]);
  }

  /** Record what processing did with each event, in one statement. */
  async finishEvents(done: { id: string; state: string; result: string }[]): Promise<void> {
    if (!done.length) return;
    await this.db.rows(
      `UPDATE billing_events e SET state = v.state, result = v.result, processed_at = now(), attempts = e.attempts + 1
         FROM unnest($1::text[], $2::text[], $3::text[]) AS v (id, state, result) WHERE e.id = v.id`,
      [done.map((d) => d.id), done.map((d) => d.state), done.map((d) => d.result)],
    );
  }

  /** Processing threw: try again later (1, 2, 4 … 300 s), or give up after `maxAttempts`. */
  async retryEvent(id: string, error: string, maxAttempts: number): Promise<EventRow | undefined> {
    const [row] = await this.db.rows<EventRow>(
      `UPDATE billing_events SET attempts = attempts + 1, result = $2,
         state = CASE WHEN attempts + 1 >= $3 THEN 'failed' ELSE state END,
         processed_at = CASE WHEN attempts + 1 >= $3 THEN now() END,
         not_before = now() + make_interval(secs => least(300, power(2, attempts)))
       WHERE id = $1 RETURNING *`,
      [id, error, maxAttempts],
    );
    return row;
  }

  events(f: { orderId?: string; state?: string }, limit: number, before?: { at: string; id: string }): Promise<EventRow[]> {
    return this.db.rows<EventRow>(
      `SELECT * FROM billing_events WHERE ($1::text IS NULL OR order_id = $1) AND ($2::text IS NULL OR state = $2)
         AND ($3::timestamptz IS NULL OR (received_at, id) < ($3, $4)) ORDER BY received_at DESC, id DESC LIMIT $5`,
      [f.orderId ?? null, f.state ?? null, before?.at ?? null, before?.id ?? null, limit],
    );
  }

  // ---- orders

  /** The order, locked for the rest of the transaction. */
  lockOrder(id: string): Promise<OrderRow | undefined> {
    return this.db.rows<OrderRow>('SELECT * FROM orders WHERE id = $1 FOR UPDATE', [id]).then((r) => r[0]);
  }

  order(id: string): Promise<OrderRow | undefined> {
    return this.db.rows<OrderRow>('SELECT * FROM orders WHERE id = $1', [id]).then((r) => r[0]);
  }

  orderByJob(jobId: string): Promise<OrderRow | undefined> {
    return this.db.rows<OrderRow>('SELECT * FROM orders WHERE job_id = $1', [jobId]).then((r) => r[0]);
  }

  async insertOrder(o: { id: string; customer: string; state: OrderState } & OrderChanges): Promise<OrderRow> {
    const cols = Object.keys(o);
    const [row] = await this.db.rows<OrderRow>(
      `INSERT INTO orders (${cols.map(snake).join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')}) RETURNING *`,
      cols.map((c) => jsonValue((o as Record<string, unknown>)[c])),
    );
    return row;
  }

  async updateOrder(id: string, changes: OrderChanges): Promise<OrderRow> {
    const cols = Object.keys(changes);
    const [row] = await this.db.rows<OrderRow>(
      `UPDATE orders SET ${cols.map((c, i) => `${snake(c)} = $${i + 2}`).join(', ')}${cols.length ? ', ' : ''}updated_at = now() WHERE id = $1 RETURNING *`,
      [id, ...cols.map((c) => jsonValue((changes as Record<string, unknown>)[c]))],
    );
    return row;
  }

  orders(f: { state?: string; customer?: string }, limit: number, before?: { at: string; id: string }): Promise<OrderRow[]> {
    return this.db.rows<OrderRow>(
      `SELECT * FROM orders WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR customer = $2)
         AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4)) ORDER BY created_at DESC, id DESC LIMIT $5`,
      [f.state ?? null, f.customer ?? null, before?.at ?? null, before?.id ?? null, limit],
    );
  }

  /** Backordered orders, oldest first, locked (others skip them). */
  lockBackordered(limit: number, after?: { at: Date; id: string }): Promise<OrderRow[]> {
    return this.db.rows<OrderRow>(
      `SELECT * FROM orders WHERE state = 'backordered' AND ($2::timestamptz IS NULL OR (backordered_at, id) > ($2, $3))
        ORDER BY backordered_at, id LIMIT $1 FOR UPDATE SKIP LOCKED`,
      [limit, after?.at ?? null, after?.id ?? null],
    );
  }

  /**
   * An available rented server that matches a dedicated plan, locked for the caller's
   * transaction; servers another transaction is taking are skipped, so concurrent orders never
   * get the same one. The preferred site first, then the plan's sites in name order.
   */
  /**
   * The first available server matching a plan (preferred site first) at a site whose boot
   * services are on, locked for this transaction. NO KEY UPDATE: concurrent placements skip it,
   * while rows that refer to it (the BMC status a console check writes on its own connection) can
   * still be written.
   */
  async lockMatchingServer(spec: ServerSpec, preferredSite?: string): Promise<MatchedServer | undefined> {
    const [row] = await this.db.rows<MatchedServer>(
      `SELECT d.id, d.name, d.site_id, s.code AS site_code, coalesce(bs.privilege_check, 'unknown') AS privilege_check ${MATCHING_SERVERS} AND ${bootServedSql('d.site_id')}
        ORDER BY (s.code = $6) DESC, (bs.privilege_check = 'enforced' OR d.bmc_accept_privilege_risk) DESC, s.code, d.name
        LIMIT 1 FOR NO KEY UPDATE OF d SKIP LOCKED`,
      matchingParams(spec, preferredSite ?? null),
    );
    return row;
  }

  /** Servers matching the plan but for their BMC's console access (the reason an order waits). */
  async matchingWithoutConsole(spec: ServerSpec): Promise<{ name: string; why: string }[]> {
    return this.db.rows<{ name: string; why: string }>(
      `SELECT d.name, CASE WHEN d.bmc_address IS NULL THEN 'no BMC' ELSE 'privilege-unsafe BMC' END AS why
         ${MATCHING_SERVERS.replace('$8::boolean IS NOT TRUE OR', 'NOT')} AND $6::text IS NULL AND $8::boolean ORDER BY d.name LIMIT 10`,
      matchingParams({ ...spec, console: true }, null),
    );
  }

  /** The sites with a server matching the plan whose boot services are off (the reason an order waits). */
  async matchingSitesWithoutBoot(spec: ServerSpec): Promise<string[]> {
    const rows = await this.db.rows<{ code: string }>(`SELECT DISTINCT s.code ${MATCHING_SERVERS} AND NOT ${bootServedSql('d.site_id')} AND $6::text IS NULL ORDER BY s.code`, matchingParams(spec, null));
    return rows.map((r) => r.code);
  }

  // ---- outbox

  async addOutbox(o: { orderId: string; type: string; payload: unknown; secretsEnc: string | null }): Promise<OutboxRow> {
    const [row] = await this.db.rows<OutboxRow>('INSERT INTO billing_outbox (order_id, type, payload, secrets_enc) VALUES ($1, $2, $3, $4) RETURNING *', [
      o.orderId,
      o.type,
      JSON.stringify(o.payload),
      o.secretsEnc,
    ]);
    return row;
  }

  /**
   * Due messages, oldest first, leased to the caller for `leaseSeconds` (not due for anyone else
   * meanwhile; a sender that dies lets the lease run out and another sends them): no lock or
   * transaction is held while they are sent.
   */
  async claimOutbox(limit: number, leaseSeconds: number): Promise<OutboxRow[]> {
    const rows = await this.db.rows<OutboxRow>(
      `WITH due AS (SELECT id FROM billing_outbox WHERE state = 'pending' AND next_attempt_at <= now() ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
       UPDATE billing_outbox o SET next_attempt_at = now() + make_interval(secs => $2) FROM due WHERE o.id = due.id RETURNING o.*`,
      [limit, leaseSeconds],
    );
    return rows.sort((a, b) => a.created_at.getTime() - b.created_at.getTime() || a.id.localeCompare(b.id));
  }

  async outboxDelivered(id: string, status: number): Promise<void> {
    await this.db.rows(`UPDATE billing_outbox SET state = 'delivered', delivered_at = now(), attempts = attempts + 1, last_status = $2, last_error = NULL WHERE id = $1`, [id, status]);
  }

  /** A failed attempt: next one after 5 s, doubling, at most an hour apart. */
  async outboxFailed(id: string, status: number | null, error: string): Promise<void> {
    await this.db.rows(
      `UPDATE billing_outbox SET attempts = attempts + 1, last_status = $2, last_error = $3,
         next_attempt_at = now() + make_interval(secs => least(3600, 5 * power(2, attempts))) WHERE id = $1`,
      [id, status, error],
    );
  }

  async replayOutbox(id: string): Promise<OutboxRow | undefined> {
    const [row] = await this.db.rows<OutboxRow>(`UPDATE billing_outbox SET state = 'pending', next_attempt_at = now() WHERE id = $1 RETURNING *`, [id]);
    return row;
  }

  outboxMessage(id: string): Promise<OutboxRow | undefined> {
    return this.db.rows<OutboxRow>('SELECT * FROM billing_outbox WHERE id = $1', [id]).then((r) => r[0]);
  }

  outbox(f: { orderId?: string; state?: string }, limit: number, before?: { at: string; id: string }): Promise<OutboxRow[]> {
    return this.db.rows<OutboxRow>(
      `SELECT * FROM billing_outbox WHERE ($1::text IS NULL OR order_id = $1) AND ($2::text IS NULL OR state = $2)
         AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4)) ORDER BY created_at DESC, id DESC LIMIT $5`,
      [f.orderId ?? null, f.state ?? null, before?.at ?? null, before?.id ?? null, limit],
    );
  }
}

const snake = (c: string) => c.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`);
const jsonValue = (v: unknown) => (v !== null && typeof v === 'object' && !(v instanceof Date) ? JSON.stringify(v) : v);
