import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '../../app.tokens';
import { requestContext } from '../../common/request-context';
import { Database } from '../../database/database';
import { SitesService } from '../inventory/sites.service';
import { WorkQueueService } from '../work-queue/work-queue.service';
import { BillingRepository } from './billing.repository';
import { BillingInbox } from './billing-inbox.service';
import { OrdersService } from './orders.service';
import { OutboxService } from './outbox.service';

/** Attempts at one event before it is marked failed and a person is asked. */
const MAX_ATTEMPTS = 8;
const POLL_MS = 1000;
/** Events applied per transaction. */
const BATCH = 20;
const BACKORDER_EVERY_MS = 10_000;
const BILLING_ACTOR = { source: 'system' as const, actor: { kind: 'system' as const, name: 'billing', role: 'admin' as const } };

/**
 * Works through the inbox (each event in one transaction with its effects: applied exactly once,
 * and a crash before the commit leaves it pending for the next pass), fills backorders and
 * delivers the outbox. Runs in roles all and api; several processes share the work (SKIP LOCKED).
 */
@Injectable()
export class BillingProcessor {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stopped = true;
  private lastBackorders = 0;

  constructor(
    private readonly repo: BillingRepository,
    private readonly orders: OrdersService,
    private readonly outbox: OutboxService,
    private readonly work: WorkQueueService,
    private readonly sites: SitesService,
    private readonly db: Database,
    inbox: BillingInbox,
    @Inject(LOGGER) private readonly log: Logger,
  ) {
    inbox.onStored(() => this.kick());
  }

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => this.kick(), POLL_MS);
    this.timer.unref();
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** Run a pass now (or right after the one in progress). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass().catch((err: Error) => this.log.error({ err: err.message }, 'billing processing pass failed'));
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = undefined));
  }

  /** One pass: every due event, backorders (now and then), the outbox. */
  async pass(): Promise<void> {
    while (!this.stopped && (await this.processDue(BATCH)) > 0) {
      /* next batch */
    }
    if (Date.now() - this.lastBackorders > BACKORDER_EVERY_MS) {
      this.lastBackorders = Date.now();
      const placed = await requestContext.run(BILLING_ACTOR, () => this.orders.fillBackorders());
      if (placed) this.log.info({ placed }, 'backordered orders got servers');
    }
    while (!this.stopped && (await this.outbox.deliverDue()) > 0) {
      /* more may be due */
    }
  }

  /** Process the next due event; false when there is none. */
  async processOne(): Promise<boolean> {
    return (await this.processDue(1)) > 0;
  }

  /**
   * Process up to `limit` due events in one transaction, each in its own savepoint: one that
   * fails is rolled back alone and retried later; a crash rolls the whole batch back, to be
   * applied on the next pass. The number of events taken.
   */
  async processDue(limit: number): Promise<number> {
    const failures: { id: string; error: Error; requestId: string | null }[] = [];
    const done: { id: string; state: string; result: string; type: string; orderId: string; requestId: string | null }[] = [];
    const taken = await this.db.transaction(async () => {
      const events = await this.repo.claimEvents(limit);
      for (const ev of events) {
        try {
          const applied = await requestContext.run({ ...BILLING_ACTOR, requestId: ev.request_id ?? undefined }, () => this.orders.apply(ev));
          done.push({ id: ev.id, state: applied.state, result: applied.result, type: ev.type, orderId: ev.order_id, requestId: ev.request_id });
        } catch (err) {
          failures.push({ id: ev.id, error: err as Error, requestId: ev.request_id });
          const row = await this.repo.retryEvent(ev.id, (err as Error).message, MAX_ATTEMPTS);
          if (row?.state === 'failed') {
            const [site] = await this.sites.list();
            if (site) await this.work.open(site.id, 'automation-failure', `Billing event ${ev.id} (${ev.type}, order ${ev.order_id}) could not be processed: ${(err as Error).message}`, { type: 'billing_event', id: ev.id });
          }
        }
      }
      await this.repo.finishEvents(done);
      return events.length;
    });
    for (const d of done) this.log.info({ eventId: d.id, type: d.type, orderId: d.orderId, state: d.state, result: d.result, reqId: d.requestId }, 'billing event processed');
    for (const f of failures) this.log.error({ eventId: f.id, err: f.error.message, reqId: f.requestId }, 'billing event processing failed; will retry');
    return taken;
  }
}
