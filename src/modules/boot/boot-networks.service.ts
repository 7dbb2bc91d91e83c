import { Injectable } from '@nestjs/common';
import { NotFoundError, ValidationError } from '../../common/errors';
import { Database } from '../../database/database';
import { AuditService } from '../audit/audit.service';
import { SitesService } from '../inventory/sites.service';
import { inCidr } from './dhcp/dhcp-server';
import { BootRepository, type BootNetworkRow } from './boot.repository';
import type { BootNetworkInput } from './boot.schemas';

export interface BootNetworkView {
  id: string;
  site: string;
  name: string;
  cidr: string;
  gateway: string | null;
  dns: string[];
  domain: string | null;
  leaseSeconds: number;
}

const view = (r: BootNetworkRow, site: string): BootNetworkView => ({ id: r.id, site, name: r.name, cidr: r.cidr, gateway: r.gateway, dns: r.dns, domain: r.domain, leaseSeconds: r.lease_seconds });

/** Provisioning networks racksmith's DHCP answers for in authoritative mode. */
@Injectable()
export class BootNetworksService {
  constructor(
    private readonly repo: BootRepository,
    private readonly sites: SitesService,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  async list(site?: string): Promise<BootNetworkView[]> {
    const s = site ? await this.sites.resolve(site, 'site') : undefined;
    const codes = new Map((await this.sites.list()).map((x) => [x.id, x.code]));
    return (await this.repo.networks(s?.id)).map((r) => view(r, codes.get(r.site_id) ?? r.site_id));
  }

  async get(id: string): Promise<BootNetworkView & { leases: unknown[] }> {
    const r = await this.repo.network(id);
    if (!r) throw new NotFoundError('boot network', id);
    const site = await this.sites.resolve(r.site_id);
    return { ...view(r, site.code), leases: await this.repo.leases(id) };
  }

  create(input: BootNetworkInput): Promise<BootNetworkView> {
    const [net, bits] = input.cidr.split('/');
    const mask = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
    const asNumber = net!.split('.').reduce((a, x) => (a << 8) + Number(x), 0) >>> 0;
    if ((asNumber & ~mask) >>> 0) throw new ValidationError(`${input.cidr} has host bits set; the network is ${[24, 16, 8, 0].map((s) => ((asNumber & mask) >>> s) & 255).join('.')}/${bits}`, 'cidr');
    if (input.gateway && !inCidr(input.gateway, input.cidr)) throw new ValidationError(`gateway ${input.gateway} is not in ${input.cidr}`, 'gateway');
    return this.db.transaction(async () => {
      const site = await this.sites.resolve(input.site, 'site');
      const row = await this.repo.createNetwork({ siteId: site.id, name: input.name, cidr: input.cidr, gateway: input.gateway ?? null, dns: input.dns, domain: input.domain ?? null, leaseSeconds: input.leaseSeconds });
      await this.audit.record({ action: 'boot-network.create', targetType: 'boot-network', targetId: row.id, changes: input });
      return view(row, site.code);
    });
  }

  delete(id: string): Promise<void> {
    return this.db.transaction(async () => {
      if (!(await this.repo.deleteNetwork(id))) throw new NotFoundError('boot network', id);
      await this.audit.record({ action: 'boot-network.delete', targetType: 'boot-network', targetId: id, changes: {} });
    });
  }
}
