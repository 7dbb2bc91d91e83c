import { Injectable } from '@nestjs/common';
import { NotFoundError } from '../../common/errors';
import { newestFirstPage, type Page } from '../../common/pagination';
import { Database } from '../../database/database';
import { AuditService } from '../audit/audit.service';
import type { EventRow, OrderRow } from './billing.repository';
import type { BillingEvent } from './billing.schemas';
import { ColocationOrders } from './colocation-orders.service';
import { OrderBook, type Applied, type Fulfilment } from './order-book.service';
import { PlansService } from './plans.service';
import { ServerOrders } from './server-orders.service';
import { VpsOrders } from './vps-orders.service';

export type { Applied } from './order-book.service';
export { ORDER_PROVISION, ORDER_SUSPEND, ORDER_UNSUSPEND, ORDER_TERMINATE } from './server-orders.service';
export { ORDER_VPS_PROVISION, ORDER_VPS_SUSPEND, ORDER_VPS_UNSUSPEND, ORDER_VPS_TERMINATE, vmNameFor } from './vps-orders.service';

export interface OrderView {
  id: string;
  customer: string;
  plan: string | null;
  kind: string | null;
  state: OrderRow['state'];
  siteId: string | null;
  serverId: string | null;
  vmId: string | null;
  jobId: string | null;
  suspendRequested: boolean;
  lastError: string | null;
  paidAt: string | null;
  backorderedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export function orderView(o: OrderRow): OrderView {
  return {
    id: o.id,
    customer: o.customer,
    plan: o.plan,
    kind: o.kind,
    state: o.state,
    siteId: o.site_id,
    serverId: o.server_id,
    vmId: o.vm_id,
    jobId: o.job_id,
    suspendRequested: o.suspend_requested,
    lastError: o.last_error,
    paidAt: o.paid_at?.toISOString() ?? null,
    backorderedAt: o.backordered_at?.toISOString() ?? null,
    createdAt: o.created_at.toISOString(),
    updatedAt: o.updated_at.toISOString(),
  };
}

/**
 * Orders from the billing system, as a state machine: each event applied once, in one transaction
 * with the order locked; what the order's state and the event's time allow is recorded here, and
 * the product's fulfilment (ServerOrders, VpsOrders, ColocationOrders) does the work, as jobs that
 * report back through the outbox. The next product gets a Fulfilment of its own.
 */
@Injectable()
export class OrdersService {
  constructor(
    private readonly book: OrderBook,
    private readonly plans: PlansService,
    private readonly servers: ServerOrders,
    private readonly vps: VpsOrders,
    private readonly colocation: ColocationOrders,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  /** Which product fulfils the order (a dedicated server unless the plan says otherwise). */
  private unit(order: OrderRow): Fulfilment {
    return order.kind === 'colocation' ? this.colocation : order.kind === 'vps' ? this.vps : this.servers;
  }

  /** Apply one inbox event (inside the caller's transaction, which holds the event row). */
  apply(ev: EventRow): Promise<Applied> {
    return this.db.withLock(`racksmith:order:${ev.order_id}`, async () => {
      const e = ev.payload as BillingEvent;
      const order = await this.book.repo.lockOrder(ev.order_id);
      if (order && order.customer !== e.order.customer) {
        return { state: 'ignored', result: `order ${order.id} belongs to customer ${order.customer}, the event names ${e.order.customer}` };
      }
      switch (ev.type) {
        case 'order.paid':
          return this.paid(order, e, ev.occurred_at);
        case 'order.suspended':
          return this.suspended(order, e, ev.occurred_at);
        case 'order.unsuspended':
          return this.unsuspended(order, e, ev.occurred_at);
        case 'order.terminated':
          return this.terminated(order, e, ev.occurred_at);
      }
    });
  }

  private async paid(order: OrderRow | undefined, e: BillingEvent, at: Date): Promise<Applied> {
    if (order && order.state !== 'unpaid') return { state: 'ignored', result: `order ${order.id} is already ${order.state}` };
    const plan = await this.plans.find(e.order.plan!);
    const fields = { customer: e.order.customer, plan: e.order.plan!, kind: plan?.kind ?? null, plan_spec: plan?.spec ?? null, options: e.order.options, paid_at: at };
    const row = order ? await this.book.repo.updateOrder(order.id, { ...fields, state: 'provisioning' }) : await this.book.repo.insertOrder({ id: e.order.id, ...fields, state: 'provisioning' });
    await this.audit.record({ action: 'order.paid', targetType: 'order', targetId: row.id, changes: { plan: row.plan, kind: row.kind } });
    if (!plan) return this.book.fail(row, `plan ${e.order.plan} does not exist (any more)`);
    return this.unit(row).place(row);
  }

  private async suspended(order: OrderRow | undefined, e: BillingEvent, at: Date): Promise<Applied> {
    if (!order) {
      await this.book.repo.insertOrder({ id: e.order.id, customer: e.order.customer, state: 'unpaid', suspend_requested: true, state_event_at: at });
      return { state: 'processed', result: 'suspension recorded before the payment; applied once the order is provisioned' };
    }
    if (order.state_event_at && order.state_event_at > at) return { state: 'ignored', result: 'a later suspend/unsuspend was already applied' };
    await this.book.repo.updateOrder(order.id, { suspend_requested: true, state_event_at: at });
    const done = await this.unit(order).suspend(order);
    return done ?? { state: 'processed', result: `order is ${order.state}: suspension recorded${['provisioning', 'backordered', 'unpaid'].includes(order.state) ? ', applied once it is provisioned' : ''}` };
  }

  private async unsuspended(order: OrderRow | undefined, e: BillingEvent, at: Date): Promise<Applied> {
    if (!order) {
      await this.book.repo.insertOrder({ id: e.order.id, customer: e.order.customer, state: 'unpaid', suspend_requested: false, state_event_at: at });
      return { state: 'processed', result: 'unsuspension recorded before the payment' };
    }
    if (order.state_event_at && order.state_event_at > at) return { state: 'ignored', result: 'a later suspend/unsuspend was already applied' };
    await this.book.repo.updateOrder(order.id, { suspend_requested: false, state_event_at: at });
    return (await this.unit(order).unsuspend(order)) ?? { state: 'processed', result: `order is ${order.state}: unsuspension recorded` };
  }

  private async terminated(order: OrderRow | undefined, e: BillingEvent, at: Date): Promise<Applied> {
    if (!order) {
      await this.book.repo.insertOrder({ id: e.order.id, customer: e.order.customer, state: 'terminated', state_event_at: at });
      return { state: 'processed', result: 'terminated before it was paid: a later payment event is ignored' };
    }
    if (order.state === 'terminated' || order.state === 'terminating') return { state: 'ignored', result: `order is already ${order.state}` };
    if (order.vm_id) return this.vps.terminate(order, at);
    if (order.server_id) return this.servers.terminate(order, at);
    if (order.kind === 'colocation') return this.colocation.terminate(order, at);
    return this.book.endUnplaced(order, at);
  }

  /**
   * Backordered orders, oldest first, get what became available (servers, hypervisor room, rack
   * space). All of them are looked at, a page per transaction; once an order of a plan found
   * nothing, the later orders of that plan wait for the next round (they would find nothing
   * either), so a long queue of one plan never starves the others. The number placed.
   */
  async fillBackorders(page = 50, maxPages = 100): Promise<number> {
    let placed = 0;
    const stuck = new Set<string>();
    let after: { at: Date; id: string } | undefined;
    for (let i = 0; i < maxPages; i++) {
      const orders = await this.db.transaction(async () => {
        const rows = await this.book.repo.lockBackordered(page, after);
        for (const order of rows) {
          if (stuck.has(String(order.plan))) continue;
          const r = await this.book.withOrder(order.id, (locked) => this.unit(locked).place(locked));
          if (r.state === 'processed') placed++;
          else stuck.add(String(order.plan));
        }
        return rows;
      });
      if (orders.length < page) break;
      const last = orders[orders.length - 1]!;
      after = { at: last.backordered_at!, id: last.id };
    }
    return placed;
  }

  // ---- reads

  async get(id: string): Promise<OrderView> {
    const o = await this.book.repo.order(id);
    if (!o) throw new NotFoundError('order', id);
    return orderView(o);
  }

  list(f: { state?: string; customer?: string }, limit: number, cursor?: string): Promise<Page<OrderView>> {
    return newestFirstPage(cursor, limit, (n, before) => this.book.repo.orders(f, n, before), (o) => ({ at: o.created_at, id: o.id }), orderView);
  }
}
