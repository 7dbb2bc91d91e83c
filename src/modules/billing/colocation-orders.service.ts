import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { ColocationService } from '../colocation/colocation.service';
import { SitesService } from '../inventory/sites.service';
import type { OrderRow } from './billing.repository';
import { OrderBook, type Applied, type Fulfilment } from './order-book.service';

/**
 * Colocation for orders: rack units and power reserved, the item expected and an intake task,
 * billing told at once. There is no hardware racksmith drives: suspend, unsuspend and terminate
 * are tasks for a person (outlets, access, removal), and billing is told.
 */
@Injectable()
export class ColocationOrders implements Fulfilment {
  constructor(
    private readonly book: OrderBook,
    private readonly colocation: ColocationService,
    private readonly sites: SitesService,
    private readonly audit: AuditService,
  ) {}

  async place(order: OrderRow): Promise<Applied> {
    const spec = order.plan_spec as { units: number; powerW: number; sites?: string[] };
    const siteIds = await this.book.preferredSites(order);
    // A plan limited to sites that do not exist here has nowhere to go: backordered, not placed anywhere.
    if (spec.sites?.length && !siteIds.length) return this.book.backorder(order, `site among ${spec.sites.join(', ')}`);
    const r = await this.colocation.reserveSpace({ orderId: order.id, customer: order.customer, siteIds, units: spec.units, powerW: spec.powerW });
    if (!r) return this.book.backorder(order, `rack space of ${spec.units}U with ${spec.powerW} W`);
    const row = await this.book.repo.updateOrder(order.id, { state: 'active', site_id: r.item.siteId, last_error: null });
    const site = await this.sites.resolve(r.item.siteId);
    await this.book.outbox.add(order.id, 'order.provisioned', {
      order: this.book.ref(row),
      colocation: { site: site.code, rack: r.rack, units: [r.position, r.position + spec.units - 1], powerW: spec.powerW, itemId: r.item.id, next: 'deliver the equipment; the site\'s intake task is open' },
    });
    if (order.state === 'backordered') await this.book.work.closeFor({ type: 'order', id: order.id }, 'backorder', 'rack space became available');
    await this.audit.record({ action: 'order.provisioned', targetType: 'order', targetId: order.id, changes: { colocationItemId: r.item.id } });
    return { state: 'processed', result: `rack ${r.rack} units ${r.position}-${r.position + spec.units - 1} and ${spec.powerW} W reserved; intake task opened` };
  }

  suspend(order: OrderRow): Promise<Applied | null> {
    if (order.state !== 'active') return Promise.resolve(null);
    return this.byPerson(order, 'suspended', 'Suspend', 'cut the power outlets and site access of the customer\'s equipment, as the suspension policy says');
  }

  unsuspend(order: OrderRow): Promise<Applied | null> {
    if (order.state !== 'suspended') return Promise.resolve(null);
    return this.byPerson(order, 'active', 'Unsuspend', 'restore the power outlets and site access of the customer\'s equipment');
  }

  /** Terminated at once; equipment (or a reservation) in place is a removal task. */
  async terminate(order: OrderRow, at: Date): Promise<Applied> {
    const ended = await this.book.endUnplaced(order, at);
    if (order.state !== 'active' && order.state !== 'suspended') return ended;
    await this.book.work.open(order.site_id!, 'removal', `Colocation order ${order.id} terminated: remove the customer's equipment (or the reservation) and free its units and power`, { type: 'order', id: order.id });
    return { state: 'processed', result: 'terminated; the site\'s work queue has the removal' };
  }

  /** The state changes, a person acts, billing is told. */
  private async byPerson(order: OrderRow, to: 'active' | 'suspended', verb: string, what: string): Promise<Applied> {
    const row = await this.book.repo.updateOrder(order.id, { state: to });
    await this.book.work.open(order.site_id!, 'other', `${verb} colocation order ${order.id} of customer ${order.customer}: ${what}`, { type: 'order', id: order.id });
    await this.book.outbox.add(order.id, to === 'suspended' ? 'order.suspended' : 'order.unsuspended', { order: this.book.ref(row) });
    return { state: 'processed', result: `${to}; the site's work queue has the task` };
  }
}
