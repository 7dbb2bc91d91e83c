import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';
import { MissingReferenceError, NotFoundError } from '../../common/errors';
import { AuditService } from '../audit/audit.service';
import { SiteRepository } from './inventory.repositories';
import type { SiteEntity } from './inventory.entities';
import type { SiteInput } from './inventory.schemas';

export interface SiteView {
  id: string;
  code: string;
  name: string;
  address: string | null;
  timezone: string;
  visitHours: { opens: string; closes: string };
  createdAt: string;
  updatedAt: string;
}

export function siteView(s: SiteEntity): SiteView {
  return {
    id: s.id,
    code: s.code,
    name: s.name,
    address: s.address,
    timezone: s.timezone,
    visitHours: { opens: s.visitOpens.slice(0, 5), closes: s.visitCloses.slice(0, 5) },
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
  };
}

function columns(input: Partial<SiteInput>): Partial<SiteEntity> {
  const out: Partial<SiteEntity> = {};
  if (input.code !== undefined) out.code = input.code;
  if (input.name !== undefined) out.name = input.name;
  if (input.address !== undefined) out.address = input.address ?? null;
  if (input.timezone !== undefined) out.timezone = input.timezone;
  if (input.visitHours) {
    out.visitOpens = input.visitHours.opens;
    out.visitCloses = input.visitHours.closes;
  }
  return out;
}

@Injectable()
export class SitesService {
  constructor(
    private readonly sites: SiteRepository,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  /** The site by id or code: 404 for a path, 400 naming the body field that referenced it. */
  async resolve(ref: string, field?: string): Promise<SiteEntity> {
    const site = await this.sites.findByRef(ref);
    if (!site) throw field ? new MissingReferenceError('site', ref, field) : new NotFoundError('site', ref);
    return site;
  }

  async list(): Promise<SiteView[]> {
    return (await this.sites.all()).map(siteView);
  }

  async get(ref: string): Promise<SiteView> {
    return siteView(await this.resolve(ref));
  }

  create(input: SiteInput): Promise<SiteView> {
    return this.db.transaction(async () => {
      const site = await this.sites.insert(columns(input));
      await this.audit.record({ action: 'site.create', targetType: 'site', targetId: site.id, changes: input });
      return siteView(site);
    });
  }

  update(ref: string, input: Partial<SiteInput>): Promise<SiteView> {
    return this.db.transaction(async () => {
      const site = await this.resolve(ref);
      const updated = (await this.sites.update(site.id, columns(input)))!;
      await this.audit.record({ action: 'site.update', targetType: 'site', targetId: site.id, changes: input });
      return siteView(updated);
    });
  }

  delete(ref: string): Promise<void> {
    return this.db.transaction(async () => {
      const site = await this.resolve(ref);
      await this.sites.delete(site.id);
      await this.audit.record({ action: 'site.delete', targetType: 'site', targetId: site.id, changes: { code: site.code } });
    });
  }
}
