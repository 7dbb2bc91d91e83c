import { Injectable } from '@nestjs/common';
import { randomString } from '../../common/crypto';
import { SecretBox } from '../../common/secret-box';
import { Database } from '../../database/database';
import type { JobEnd } from '../../jobs/job-registry';
import { SitesService } from '../inventory/sites.service';
import { WorkQueueService } from '../work-queue/work-queue.service';
import { BillingRepository, type OrderRow } from './billing.repository';
import { OutboxService } from './outbox.service';

/** What applying one event did: `ignored` events changed nothing (the result says why). */
export interface Applied {
  state: 'processed' | 'ignored';
  result: string;
}

/** Secrets an order carries until the billing system has them (sealed in orders.access_enc). */
export interface Access {
  rootPassword?: string;
  ipkvm?: { grantId: string; host: string; username: string; password: string; consoleUrl: string; expiresAt: string };
  /** Why IPKVM access could not be given (the order was delivered without it). */
  consoleFailed?: string;
}

/**
 * What a product's fulfilment does with an order (servers, VPS, colocation): place what was paid,
 * and act on suspend, unsuspend and terminate once OrdersService has recorded them. `null`: nothing
 * to do in the order's state now (the wish is recorded and applied later).
 */
export interface Fulfilment {
  place(order: OrderRow): Promise<Applied>;
  suspend(order: OrderRow): Promise<Applied | null>;
  unsuspend(order: OrderRow): Promise<Applied | null>;
  /** Only for an order that holds hardware (a server or a VM) or is colocation. */
  terminate(order: OrderRow, at: Date): Promise<Applied>;
}

const PASSWORD_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

/**
 * The order bookkeeping every product shares: the order under its lock, its sealed secrets,
 * backorders, failures, the events billing gets and the work queue's tasks about orders.
 */
@Injectable()
export class OrderBook {
  constructor(
    readonly repo: BillingRepository,
    readonly outbox: OutboxService,
    readonly work: WorkQueueService,
    private readonly sites: SitesService,
    private readonly secrets: SecretBox,
    private readonly db: Database,
  ) {}

  /** fn with the order locked (its advisory lock and row), in one transaction. */
  withOrder<T>(orderId: string, fn: (order: OrderRow) => Promise<T>): Promise<T> {
    return this.db.withLock(`racksmith:order:${orderId}`, async () => fn((await this.repo.lockOrder(orderId))!));
  }

  /** The secrets a new order starts with: a root password when the customer gave no SSH key. */
  newAccess(sshKeys: string[] | undefined): Access {
    return sshKeys?.length ? {} : { rootPassword: randomString(20, PASSWORD_ALPHABET) };
  }

  access(order: OrderRow): Access {
    return order.access_enc ? (JSON.parse(this.secrets.open(order.access_enc)) as Access) : {};
  }

  seal(access: Access): string | null {
    return Object.keys(access).length ? this.secrets.seal(JSON.stringify(access)) : null;
  }

  ref(o: OrderRow) {
    return { id: o.id, customer: o.customer, plan: o.plan, state: o.state };
  }

  /** Backordered: the site's work queue and billing are told; filled oldest first when stock returns. */
  async backorder(order: OrderRow, what: string): Promise<Applied> {
    if (order.state === 'backordered') return { state: 'ignored', result: `still no ${what}` };
    const siteId = await this.siteFor(order);
    const row = await this.repo.updateOrder(order.id, { state: 'backordered', backordered_at: new Date(), site_id: siteId });
    await this.work.open(siteId, 'backorder', `No ${what} for paid order ${order.id} (plan ${order.plan}): add or free one`, { type: 'order', id: order.id }, { plan: order.plan, spec: order.plan_spec });
    await this.outbox.add(order.id, 'order.backordered', { order: this.ref(row), reason: `no ${what} is available; it is provisioned as soon as one is` });
    return { state: 'processed', result: `backordered: no ${what} available` };
  }

  /** The order is provisioning what was reserved for it (its secrets sealed until billing has them); a backorder it had is closed. */
  async provisioning(order: OrderRow, reserved: { server_id?: string; vm_id?: string; site_id: string; job_id: string }, access: Access, why: string): Promise<void> {
    await this.repo.updateOrder(order.id, { state: 'provisioning', ...reserved, access_enc: this.seal(access), last_error: null });
    if (order.state === 'backordered') await this.work.closeFor({ type: 'order', id: order.id }, 'backorder', why);
  }

  async fail(order: OrderRow, reason: string): Promise<Applied> {
    const row = await this.repo.updateOrder(order.id, { state: 'failed', last_error: reason, access_enc: null });
    await this.outbox.add(order.id, 'order.failed', { order: this.ref(row), reason });
    return { state: 'processed', result: `failed: ${reason}` };
  }

  /** The order ends terminated and billing is told. */
  async terminated(order: OrderRow, extra: Partial<OrderRow> = {}): Promise<OrderRow> {
    const row = await this.repo.updateOrder(order.id, { state: 'terminated', access_enc: null, ...extra });
    await this.outbox.add(order.id, 'order.terminated', { order: this.ref(row) });
    return row;
  }

  /** An order that holds nothing racksmith drives (not yet placed, or colocation): terminated at once, a backorder closed, billing told if it had paid. */
  async endUnplaced(order: OrderRow, at: Date): Promise<Applied> {
    const row = await this.repo.updateOrder(order.id, { state: 'terminated', state_event_at: at });
    await this.work.closeFor({ type: 'order', id: order.id }, 'backorder', 'order terminated');
    if (order.state !== 'unpaid') await this.outbox.add(order.id, 'order.terminated', { order: this.ref(row) });
    return { state: 'processed', result: 'terminated (it held no server)' };
  }

  /** A provisioning that failed or was cancelled: the order fails and billing is told (unless it was terminated). */
  async provisioningEnded(end: JobEnd): Promise<void> {
    await this.withOrder(String(end.params.orderId), async (order) => {
      if (!order || order.state !== 'provisioning' || order.job_id !== end.jobId) return;
      await this.fail(order, end.state === 'cancelled' ? 'provisioning cancelled' : `provisioning failed: ${end.error ?? 'unknown error'}`);
      await this.work.open(order.site_id!, 'automation-failure', `Provisioning of order ${order.id} failed: look at job ${end.jobId}`, { type: 'order', id: order.id }, { jobId: end.jobId, error: end.error });
    });
  }

  /** A suspend, unsuspend or terminate job that did not finish: a person looks. */
  async stuck(end: JobEnd, what: string): Promise<void> {
    const order = await this.repo.order(String(end.params.orderId));
    if (!order) return;
    await this.repo.updateOrder(order.id, { last_error: `${what} ${end.state}: ${end.error ?? ''}`.trim() });
    await this.work.open(order.site_id!, 'automation-failure', `The ${what} of order ${order.id} ${end.state}: finish it by hand or retry job ${end.jobId}`, { type: 'order', id: order.id }, { jobId: end.jobId, error: end.error });
    await end.log(`order ${order.id}: the ${what} did not finish; the site's work queue has a task`, 'warn');
  }

  /** The order's preferred site, then its plan's sites, as ids (codes not in the inventory left out). */
  async preferredSites(order: OrderRow): Promise<string[]> {
    const ids: string[] = [];
    for (const code of [order.options.site, ...((order.plan_spec?.sites as string[] | undefined) ?? [])]) {
      const site = code ? await this.sites.resolve(code).catch(() => null) : null;
      if (site && !ids.includes(site.id)) ids.push(site.id);
    }
    return ids;
  }

  /** The site an order's paperwork goes to: its own, the preferred one, the plan's first, or the first site. */
  async siteFor(order: OrderRow): Promise<string> {
    if (order.site_id) return order.site_id;
    const [preferred] = await this.preferredSites(order);
    if (preferred) return preferred;
    const [first] = await this.sites.list();
    if (!first) throw new Error('no site in the inventory to queue the order\'s work at');
    return first.id;
  }
}
