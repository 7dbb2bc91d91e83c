import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';
import { MissingReferenceError, NotFoundError } from '../../common/errors';
import type { Page } from '../../common/pagination';
import { AuditService } from '../audit/audit.service';
import { RackRepository } from './inventory.repositories';
import type { RackEntity } from './inventory.entities';
import type { RackInput } from './inventory.schemas';
import { SitesService } from './sites.service';

export interface RackView {
  id: string;
  siteId: string;
  name: string;
  location: string | null;
  heightU: number;
  powerBudgetW: number | null;
  createdAt: string;
  updatedAt: string;
}

export function rackView(r: RackEntity): RackView {
  return {
    id: r.id,
    siteId: r.siteId,
    name: r.name,
    location: r.location,
    heightU: r.heightU,
    powerBudgetW: r.powerBudgetW,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}

@Injectable()
export class RacksService {
  constructor(
    private readonly racks: RackRepository,
    private readonly sites: SitesService,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  async find(id: string, field?: string): Promise<RackEntity> {
    const rack = await this.racks.findById(id);
    if (!rack) throw field ? new MissingReferenceError('rack', id, field) : new NotFoundError('rack', id);
    return rack;
  }

  async list(filter: { site?: string }, limit: number, cursor?: string): Promise<Page<RackView>> {
    const qb = this.racks.query('r');
    if (filter.site) qb.where('r.site_id = :siteId', { siteId: (await this.sites.resolve(filter.site, 'site')).id });
    const page = await this.racks.page(qb, 'name', limit, cursor);
    return { items: page.items.map(rackView), nextCursor: page.nextCursor };
  }

  async get(id: string): Promise<RackView> {
    return rackView(await this.find(id));
  }

  create(input: RackInput): Promise<RackView> {
    return this.db.transaction(async () => {
      const site = await this.sites.resolve(input.site, 'site');
      const rack = await this.racks.insert({ siteId: site.id, name: input.name, location: input.location ?? null, heightU: input.heightU, powerBudgetW: input.powerBudgetW ?? null });
      await this.audit.record({ action: 'rack.create', targetType: 'rack', targetId: rack.id, changes: { ...input, site: site.code } });
      return rackView(rack);
    });
  }

  update(id: string, input: Partial<Omit<RackInput, 'site'>>): Promise<RackView> {
    return this.db.transaction(async () => {
      await this.find(id);
      const values: Partial<RackEntity> = {};
      if (input.name !== undefined) values.name = input.name;
      if (input.location !== undefined) values.location = input.location ?? null;
      if (input.heightU !== undefined) values.heightU = input.heightU;
      if (input.powerBudgetW !== undefined) values.powerBudgetW = input.powerBudgetW ?? null;
      const rack = (await this.racks.update(id, values))!;
      await this.audit.record({ action: 'rack.update', targetType: 'rack', targetId: id, changes: input });
      return rackView(rack);
    });
  }

  delete(id: string): Promise<void> {
    return this.db.transaction(async () => {
      const rack = await this.find(id);
      await this.racks.delete(id);
      await this.audit.record({ action: 'rack.delete', targetType: 'rack', targetId: id, changes: { name: rack.name } });
    });
  }
}
