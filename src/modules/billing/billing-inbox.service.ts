import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { ConflictError, DomainError, ValidationError } from '../../common/errors';
import { newestFirstPage, type Page } from '../../common/pagination';
import { BillingRepository, type EventRow } from './billing.repository';
import { billingEvent, type BillingEvent } from './billing.schemas';
import { SIGNATURE_HEADER, verifySignature } from './billing-signature';
import { PlansService } from './plans.service';
import { OS_TEMPLATES } from '../servers/install.schemas';
import { VmImagesService } from '../vps/vm-images.service';

export interface Received {
  eventId: string;
  orderId: string;
  received: true;
}

export interface EventView {
  id: string;
  type: string;
  orderId: string;
  occurredAt: string;
  receivedAt: string;
  state: EventRow['state'];
  attempts: number;
  processedAt: string | null;
  result: string | null;
  requestId: string | null;
  payload: Record<string, unknown>;
}

const eventView = (e: EventRow): EventView => ({
  id: e.id,
  type: e.type,
  orderId: e.order_id,
  occurredAt: e.occurred_at.toISOString(),
  receivedAt: e.received_at.toISOString(),
  state: e.state,
  attempts: e.attempts,
  processedAt: e.processed_at?.toISOString() ?? null,
  result: e.result,
  requestId: e.request_id,
  payload: e.payload,
});

/**
 * The webhook's door: signature, shape, then the event is stored in the inbox (keyed by its id)
 * before the answer. A redelivery, or the same event twice at once, gets the same answer and
 * stores nothing new; the processor does the work later.
 */
@Injectable()
export class BillingInbox {
  private readonly listeners: (() => void)[] = [];

  constructor(
    private readonly repo: BillingRepository,
    private readonly plans: PlansService,
    private readonly images: VmImagesService,
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
  ) {}

  /** Called after each stored event (the processor wakes up). */
  onStored(fn: () => void): void {
    this.listeners.push(fn);
  }

  async receive(body: Buffer, headers: Record<string, string | string[] | undefined>, meta: { requestId: string; ip: string }): Promise<Received> {
    const secrets = this.config.billing.secrets;
    if (!secrets) throw new DomainError('billing_not_configured', 'this racksmith takes no billing webhooks: RACKSMITH_BILLING_SECRETS is not set', 503);
    try {
      verifySignature(headers[SIGNATURE_HEADER], body, secrets, this.config.billing.tolerance);
    } catch (err) {
      this.log.warn({ reqId: meta.requestId, ip: meta.ip, code: (err as DomainError).code, bytes: body.length }, 'billing webhook refused');
      throw err;
    }
    const event = this.parse(body);
    if (event.type === 'order.paid') await this.checkPlan(event);
    // The event as understood (not the bytes): a redelivery re-serialised differently is still the same event.
    const canonical = JSON.stringify(event);
    const sha = createHash('sha256').update(canonical).digest('hex');
    const r = await this.repo.insertEvent({ id: event.id, type: event.type, orderId: event.order.id, occurredAt: event.occurredAt, payload: event, bodySha256: sha, requestId: meta.requestId });
    if (r.bodySha256 !== sha) throw new ConflictError('event_id_reused', `event ${event.id} was received before with different content; a new event needs a new id`, undefined, 'id');
    if (r.stored) for (const fn of this.listeners) fn();
    return { eventId: event.id, orderId: event.order.id, received: true };
  }

  private parse(body: Buffer): BillingEvent {
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new DomainError('malformed_json', `the body is not valid JSON: ${(err as Error).message}`, 400);
    }
    const parsed = billingEvent.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => ({ field: i.path.join('.') || '(body)', message: i.message }));
      throw new ValidationError(`${issues[0].field}: ${issues[0].message}`, issues[0].field, { issues });
    }
    return parsed.data;
  }

  /** A paid order's plan must exist here, and its options must suit it. */
  private async checkPlan(e: BillingEvent): Promise<void> {
    const plan = await this.plans.find(e.order.plan!);
    if (!plan) throw new ValidationError(`order.plan: no plan ${e.order.plan} is configured here (GET /api/v1/billing/plans lists them)`, 'order.plan');
    const os = e.order.options.os;
    if (!os) return;
    if (plan.kind === 'colocation') throw new ValidationError(`order.options.os: plan ${plan.code} is a colocation plan; an OS is for dedicated servers and VPS`, 'order.options.os');
    if (plan.kind === 'dedicated' && !(OS_TEMPLATES as readonly string[]).includes(os)) throw new ValidationError(`order.options.os: plan ${plan.code} is a dedicated plan; the OS is one of ${OS_TEMPLATES.join(', ')}`, 'order.options.os');
    if (plan.kind === 'vps' && !(await this.images.find(os))?.enabled) throw new ValidationError(`order.options.os: no image ${os} for VPS here (GET /api/v1/vps/images lists them)`, 'order.options.os');
  }

  list(f: { orderId?: string; state?: string }, limit: number, cursor?: string): Promise<Page<EventView>> {
    return newestFirstPage(cursor, limit, (n, before) => this.repo.events(f, n, before), (e) => ({ at: e.received_at, id: e.id }), eventView);
  }
}
