import { Injectable } from '@nestjs/common';
import type { z } from 'zod';
import { Database } from '../../database/database';
import { mapDatabaseError } from '../../database/db-errors';
import { ConflictError, NotFoundError } from '../../common/errors';
import type { Page } from '../../common/pagination';
import { requestContext } from '../../common/request-context';
import { AuditService } from '../audit/audit.service';
import { DevicesService } from '../inventory/devices.service';
import { PowerService } from '../inventory/power.service';
import { HardwareModelsService } from '../inventory/hardware-models.service';
import { SitesService } from '../inventory/sites.service';
import { WorkQueueService } from '../work-queue/work-queue.service';
import { ColocationEventRepository, ColocationItemRepository } from './colocation.repositories';
import type { ColocationEventEntity, ColocationItemEntity, ItemState } from './colocation.entities';
import type { announceInput, installInput, receiveInput } from './colocation.schemas';

export interface ColocationItemView {
  id: string;
  siteId: string;
  deviceId: string;
  customerId: string;
  description: string | null;
  installBy: 'owner' | 'staff';
  state: ItemState;
  received: { at: string; by: string; location: string | null; serials: string[]; condition: string | null } | null;
  installed: { at: string; by: string } | null;
  removed: { at: string; by: string } | null;
  history?: { step: string; at: string; by: string; details: Record<string, unknown> }[];
}

function itemView(i: ColocationItemEntity, events?: ColocationEventEntity[]): ColocationItemView {
  return {
    id: i.id,
    siteId: i.siteId,
    deviceId: i.deviceId,
    customerId: i.customerId,
    description: i.description,
    installBy: i.installBy,
    state: i.state,
    received: i.receivedAt ? { at: i.receivedAt.toISOString(), by: i.receivedBy!, location: i.receivedLocation, serials: i.serials, condition: i.condition } : null,
    installed: i.installedAt ? { at: i.installedAt.toISOString(), by: i.installedBy! } : null,
    removed: i.removedAt ? { at: i.removedAt.toISOString(), by: i.removedBy! } : null,
    ...(events ? { history: events.map((e) => ({ step: e.step, at: e.at.toISOString(), by: e.by, details: e.details })) } : {}),
  };
}

const me = () => requestContext.actorName();

/**
 * A customer's equipment: announced → received (at the data center or the delivery point) →
 * installed (by the owner, or by staff) → removed. Each step records who and when, and the
 * steps that need an engineer put a task in the site's work queue.
 */
@Injectable()
export class ColocationService {
  constructor(
    private readonly items: ColocationItemRepository,
    private readonly events: ColocationEventRepository,
    private readonly devices: DevicesService,
    private readonly power: PowerService,
    private readonly models: HardwareModelsService,
    private readonly sites: SitesService,
    private readonly queue: WorkQueueService,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  private async find(id: string): Promise<ColocationItemEntity> {
    const item = await this.items.findById(id);
    if (!item) throw new NotFoundError('colocation item', id);
    return item;
  }

  /** Move from `from` to the next state or explain why not (409 naming the current state). */
  private async advance(id: string, from: ItemState, step: string, values: Partial<ColocationItemEntity>, details: Record<string, unknown>): Promise<ColocationItemEntity> {
    const item = await this.items.advance(id, from, values);
    if (!item) {
      const current = await this.find(id);
      throw new ConflictError('illegal_transition', `cannot ${step.replace(/-/g, ' ')} an item that is ${current.state} (it must be ${from})`, { state: current.state });
    }
    await this.events.add(id, step, me(), details);
    await this.audit.record({ action: `colocation.${step}`, targetType: 'colocation_item', targetId: id, changes: details });
    return item;
  }

  async get(id: string): Promise<ColocationItemView> {
    const item = await this.find(id);
    return itemView(item, await this.events.ofItem(id));
  }

  async list(filter: { site?: string; customerId?: string; state?: ItemState }, limit: number, cursor?: string): Promise<Page<ColocationItemView>> {
    const qb = this.items.query('i');
    if (filter.site) qb.andWhere('i.site_id = :siteId', { siteId: (await this.sites.resolve(filter.site, 'site')).id });
    if (filter.customerId) qb.andWhere('i.customer_id = :c', { c: filter.customerId });
    if (filter.state) qb.andWhere('i.state = :s', { s: filter.state });
    const page = await this.items.page(qb, 'createdAt', limit, cursor);
    return { items: page.items.map((i) => itemView(i)), nextCursor: page.nextCursor };
  }

  /**
   * Rack space and power for a paid colocation order: a placeholder device of `units` U (full
   * depth, model "Reserved/<n>U") placed in the first rack of the given sites with a free block
   * and power headroom, a power connection of `powerW` on one of its PDUs, the colocation item
   * (expected) and the intake task. The inventory's own constraints (no overlapping units, feed and
   * rack budgets) decide; a candidate another order took meanwhile is skipped. Null: no room.
   */
  reserveSpace(input: { orderId: string; customer: string; siteIds: string[]; units: number; powerW: number }): Promise<{ item: ColocationItemView; rack: string; position: number } | null> {
    // One reservation at a time: two would lock the same feed and rack rows in different orders.
    return this.db.withLock('racksmith:colocation-space', () => this.reserveSpaceLocked(input));
  }

  private async reserveSpaceLocked(input: { orderId: string; customer: string; siteIds: string[]; units: number; powerW: number }): Promise<{ item: ColocationItemView; rack: string; position: number } | null> {
    const model = await this.reservedModel(input.units);
    for (const rack of await this.items.rackSpace(input.siteIds)) {
      if (rack.headroom_w !== null && rack.headroom_w < input.powerW) continue;
      if (!rack.pdus.length) continue;
      for (const position of freeBlocks(rack.height_u, rack.taken, input.units)) {
        for (const pduId of rack.pdus) {
          const made = await this.db
            .transaction(async () => {
              const device = await this.devices.create({ site: rack.site_id, name: `reserved-${input.orderId}`, role: 'colocation', modelId: model, customerId: input.customer, placement: { rack: rack.id, position, face: 'front' }, notes: `Reserved for colocation order ${input.orderId}` });
              await this.power.connect({ deviceId: device.id, pduId, allocatedW: input.powerW, maxW: input.powerW });
              const item = await this.items.insert({ siteId: rack.site_id, deviceId: device.id, customerId: input.customer, description: `Colocation order ${input.orderId}: ${input.units}U, ${input.powerW} W`, installBy: 'owner', state: 'expected', serials: [], createdBy: me() });
              await this.events.add(item.id, 'reserved', me(), { orderId: input.orderId, rack: rack.name, position, units: input.units, powerW: input.powerW });
              await this.audit.record({ action: 'colocation.reserve', targetType: 'colocation_item', targetId: item.id, changes: { orderId: input.orderId, rackId: rack.id, position, units: input.units, powerW: input.powerW } });
              await this.queue.open(rack.site_id, 'intake', `Receive equipment of customer ${input.customer} for order ${input.orderId}: rack ${rack.name}, units ${position}–${position + input.units - 1}, ${input.powerW} W`, { type: 'colocation_item', id: item.id }, { orderId: input.orderId });
              return item;
            })
            .catch((err: unknown) => {
              // Taken meanwhile, or over a feed's or the rack's budget: the next candidate.
              if (err instanceof ConflictError || mapDatabaseError(err)?.status === 409) return null;
              throw err;
            });
          if (made) return { item: await this.get(made.id), rack: rack.name, position };
        }
      }
    }
    return null;
  }

  /** The placeholder model of reserved space of `units` U (made on first use). */
  private async reservedModel(units: number): Promise<string> {
    return (await this.models.ensure({ vendor: 'Reserved', model: `${units}U`, heightU: units, fullDepth: true, maxDrawW: 100_000, typicalDrawW: 0 })).id;
  }

  announce(input: z.infer<typeof announceInput>): Promise<ColocationItemView> {
    return this.db.transaction(async () => {
      const site = await this.sites.resolve(input.site, 'site');
      const device = await this.devices.create({ site: site.id, name: input.name, role: 'colocation', modelId: input.modelId, customerId: input.customerId });
      const item = await this.items.insert({ siteId: site.id, deviceId: device.id, customerId: input.customerId, description: input.description ?? null, installBy: input.installBy, state: 'expected', serials: [], createdBy: me() });
      await this.events.add(item.id, 'announced', me(), { installBy: input.installBy });
      await this.audit.record({ action: 'colocation.announce', targetType: 'colocation_item', targetId: item.id, changes: input });
      await this.queue.open(site.id, 'intake', `Receive ${input.name} from customer ${input.customerId}`, { type: 'colocation_item', id: item.id }, { customerId: input.customerId, installBy: input.installBy });
      return this.get(item.id);
    });
  }

  receive(id: string, input: z.infer<typeof receiveInput>): Promise<ColocationItemView> {
    return this.db.transaction(async () => {
      const item = await this.advance(id, 'expected', 'received', { state: 'received', receivedAt: new Date(), receivedBy: me(), receivedLocation: input.location, serials: input.serials, condition: input.condition }, input);
      const device = await this.devices.get(item.deviceId);
      if (!device.serial) await this.devices.update(item.deviceId, { serial: input.serials[0] });
      await this.queue.closeFor({ type: 'colocation_item', id }, 'intake', `received at the ${input.location}`);
      if (item.installBy === 'staff') {
        const from = input.location === 'delivery-point' ? ' (bring it from the Moscow delivery point)' : '';
        await this.queue.open(item.siteId, 'staff-installation', `Install ${device.name} for customer ${item.customerId}${from}`, { type: 'colocation_item', id }, { location: input.location });
      }
      return this.get(id);
    });
  }

  install(id: string, input: z.infer<typeof installInput>): Promise<ColocationItemView> {
    return this.db.transaction(async () => {
      const current = await this.find(id);
      if (current.state !== 'received') throw new ConflictError('illegal_transition', `cannot install an item that is ${current.state} (it must be received)`, { state: current.state });
      // The placement goes through the inventory: the database checks units, rack and site.
      await this.devices.update(current.deviceId, { placement: input.placement });
      await this.advance(id, 'received', 'installed', { state: 'installed', installedAt: new Date(), installedBy: me() }, { placement: input.placement, by: current.installBy, notes: input.notes });
      await this.queue.closeFor({ type: 'colocation_item', id }, 'staff-installation', 'installed');
      return this.get(id);
    });
  }

  requestRemoval(id: string): Promise<ColocationItemView> {
    return this.db.transaction(async () => {
      const item = await this.find(id);
      if (item.state !== 'installed') throw new ConflictError('illegal_transition', `cannot remove an item that is ${item.state} (it must be installed)`, { state: item.state });
      const device = await this.devices.get(item.deviceId);
      await this.events.add(id, 'removal-requested', me(), {});
      await this.queue.open(item.siteId, 'removal', `Remove ${device.name} for customer ${item.customerId}`, { type: 'colocation_item', id });
      return this.get(id);
    });
  }

  remove(id: string, notes?: string): Promise<ColocationItemView> {
    return this.db.transaction(async () => {
      const item = await this.find(id);
      if (item.state !== 'installed') throw new ConflictError('illegal_transition', `cannot remove an item that is ${item.state} (it must be installed)`, { state: item.state });
      const freed = await this.power.disconnectDevice(item.deviceId);
      await this.devices.update(item.deviceId, { placement: null });
      await this.advance(id, 'installed', 'removed', { state: 'removed', removedAt: new Date(), removedBy: me() }, { notes, powerConnectionsFreed: freed });
      await this.queue.closeFor({ type: 'colocation_item', id }, 'removal', 'removed');
      return this.get(id);
    });
  }
}

/** Lowest positions where `units` contiguous units are free in a rack of `height` units. */
export function freeBlocks(height: number, taken: [number, number][], units: number): number[] {
  const used = new Array<boolean>(height + 2).fill(false);
  for (const [lo, hi] of taken) for (let u = Math.max(1, lo); u <= Math.min(height, hi); u++) used[u] = true;
  const out: number[] = [];
  for (let p = 1; p + units - 1 <= height; p++) {
    let free = true;
    for (let u = p; u < p + units && free; u++) free = !used[u];
    if (free) out.push(p);
  }
  return out;
}
