import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { request } from 'undici';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { NotFoundError } from '../../common/errors';
import { newestFirstPage, type Page } from '../../common/pagination';
import { SecretBox } from '../../common/secret-box';
import { Database } from '../../database/database';
import { AuditService } from '../audit/audit.service';
import { BillingRepository, type OutboxRow } from './billing.repository';
import { signatureHeader, SIGNATURE_HEADER } from './billing-signature';

export const OUTBOUND_TYPES = ['order.provisioned', 'order.failed', 'order.backordered', 'order.suspended', 'order.unsuspended', 'order.terminated', 'order.console_failed'] as const;
export type OutboundType = (typeof OUTBOUND_TYPES)[number];

export interface OutboxView {
  id: string;
  orderId: string;
  type: string;
  /** Without the secrets (passwords), which only the billing system receives. */
  payload: Record<string, unknown>;
  hasSecrets: boolean;
  state: OutboxRow['state'];
  attempts: number;
  nextAttemptAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  createdAt: string;
}

function outboxView(r: OutboxRow): OutboxView {
  return {
    id: r.id,
    orderId: r.order_id,
    type: r.type,
    payload: r.payload,
    hasSecrets: r.secrets_enc !== null,
    state: r.state,
    attempts: r.attempts,
    nextAttemptAt: r.state === 'pending' ? r.next_attempt_at.toISOString() : null,
    lastStatus: r.last_status,
    lastError: r.last_error,
    deliveredAt: r.delivered_at?.toISOString() ?? null,
    createdAt: r.created_at.toISOString(),
  };
}

/** Deep-merge the sealed secrets back into the payload they were taken from. */
function merge(into: Record<string, any>, secrets: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = { ...into };
  for (const [k, v] of Object.entries(secrets)) out[k] = v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' ? merge(out[k], v) : v;
  return out;
}

const DELIVERY_TIMEOUT_MS = 10_000;

/**
 * Events for the billing system: written in the transaction of the change they report, sent
 * signed (`Racksmith-Signature`, the first webhook secret) to RACKSMITH_BILLING_URL, retried with
 * backoff until a 2xx acknowledges them. Secrets (passwords) are sealed at rest and left out of
 * the API's view.
 */
@Injectable()
export class OutboxService {
  constructor(
    private readonly repo: BillingRepository,
    private readonly secrets: SecretBox,
    private readonly db: Database,
    private readonly audit: AuditService,
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
  ) {}

  /** Queue a message (inside the caller's transaction). `secrets` are sealed and merged in at send time. */
  async add(orderId: string, type: OutboundType, payload: Record<string, unknown>, secrets?: Record<string, unknown>): Promise<OutboxView> {
    const row = await this.repo.addOutbox({ orderId, type, payload: { type, occurredAt: new Date().toISOString(), ...payload }, secretsEnc: secrets ? this.secrets.seal(JSON.stringify(secrets)) : null });
    return outboxView(row);
  }

  list(f: { orderId?: string; state?: string }, limit: number, cursor?: string): Promise<Page<OutboxView>> {
    return newestFirstPage(cursor, limit, (n, before) => this.repo.outbox(f, n, before), (r) => ({ at: r.created_at, id: r.id }), outboxView);
  }

  async get(id: string): Promise<OutboxView> {
    const row = await this.repo.outboxMessage(id);
    if (!row) throw new NotFoundError('outbox message', id);
    return outboxView(row);
  }

  /** Send a message again (delivered or not): the billing system lost it, or wants it once more. */
  async replay(id: string): Promise<OutboxView> {
    return this.db.transaction(async () => {
      const row = await this.repo.replayOutbox(id);
      if (!row) throw new NotFoundError('outbox message', id);
      await this.audit.record({ action: 'billing.outbox_replay', targetType: 'outbox', targetId: id });
      return outboxView(row);
    });
  }

  /** The body as sent: the payload with its secrets, and the message id (the receiver's dedupe key). */
  body(row: OutboxRow): string {
    const payload = row.secrets_enc ? merge(row.payload, JSON.parse(this.secrets.open(row.secrets_enc)) as Record<string, unknown>) : row.payload;
    return JSON.stringify({ id: row.id, ...payload });
  }

  /** Deliver what is due (up to `batch`); the number delivered. Nothing without a URL. */
  async deliverDue(batch = 20): Promise<number> {
    const url = this.config.billing.url;
    const secret = this.config.billing.secrets?.[0];
    if (!url || !secret) return 0;
    let delivered = 0;
    // Leased, then sent outside any transaction: a slow billing system holds no database connection or lock.
    const rows = await this.repo.claimOutbox(batch, Math.ceil((batch * DELIVERY_TIMEOUT_MS * 2) / 1000) + 30);
    for (const row of rows) {
      const body = this.body(row);
      try {
        const res = await request(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signatureHeader(secret, body), 'user-agent': 'racksmith' },
          body,
          headersTimeout: DELIVERY_TIMEOUT_MS,
          bodyTimeout: DELIVERY_TIMEOUT_MS,
          maxRedirections: 0,
        });
        await res.body.text().catch(() => '');
        if (res.statusCode >= 200 && res.statusCode < 300) {
          await this.repo.outboxDelivered(row.id, res.statusCode);
          delivered++;
        } else {
          await this.repo.outboxFailed(row.id, res.statusCode, `the billing system answered ${res.statusCode}`);
          this.log.warn({ outboxId: row.id, type: row.type, status: res.statusCode }, 'billing event not acknowledged; will retry');
        }
      } catch (err) {
        await this.repo.outboxFailed(row.id, null, (err as Error).message);
        this.log.warn({ outboxId: row.id, type: row.type, err: (err as Error).message }, 'billing event not delivered; will retry');
      }
    }
    return delivered;
  }
}
