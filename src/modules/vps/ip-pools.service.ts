import { Injectable } from '@nestjs/common';
import { ConflictError, NotFoundError } from '../../common/errors';
import { Database } from '../../database/database';
import { describeConstraints } from '../../database/db-errors';
import { AuditService } from '../audit/audit.service';
import { SitesService } from '../inventory/sites.service';
import { VpsRepository, type PoolRow } from './vps.repository';
import type { IpPoolInput } from './vps.schemas';

describeConstraints({
  vm_ip_pools_gateway_in_network: { code: 'validation_failed', message: 'gateway: the gateway is not in the network', field: 'gateway', status: 400 },
  vm_ip_pools_range: { code: 'validation_failed', message: 'firstAddress/lastAddress: the range must lie in the network, first before last, without the gateway', field: 'firstAddress', status: 400 },
});

export interface IpPoolView {
  name: string;
  siteId: string;
  network: string;
  gateway: string;
  dns: string[];
  firstAddress: string;
  lastAddress: string;
  size: number;
  used: number;
  free: number;
  hypervisors: number;
  updatedAt: string;
}

const poolView = (p: PoolRow): IpPoolView => ({
  name: p.name,
  siteId: p.site_id,
  network: p.network,
  gateway: p.gateway,
  dns: p.dns,
  firstAddress: p.first_address,
  lastAddress: p.last_address,
  size: p.size,
  used: p.used,
  free: p.size - p.used,
  hypervisors: p.hypervisors,
  updatedAt: p.updated_at.toISOString(),
});

/**
 * Address pools for VMs: the subnet a hypervisor's bridge serves, and the range VMs there get a
 * static address from (written into the VM's cloud-init network-config; given back on delete).
 */
@Injectable()
export class IpPoolsService {
  constructor(
    private readonly repo: VpsRepository,
    private readonly sites: SitesService,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  async list(): Promise<IpPoolView[]> {
    return (await this.repo.pools()).map(poolView);
  }

  async get(name: string): Promise<IpPoolView> {
    const p = await this.repo.pool(name);
    if (!p) throw new NotFoundError('ip pool', name);
    return poolView(p);
  }

  /** Create or change a pool; 409 `addresses_in_use` when VMs hold addresses the new range leaves out. */
  put(name: string, input: IpPoolInput): Promise<{ pool: IpPoolView; created: boolean }> {
    return this.db.transaction(async () => {
      const site = await this.sites.resolve(input.site, 'site');
      const current = await this.repo.pool(name);
      if (current) {
        const stranded = await this.repo.addressesOutside(current.id, input.network, input.firstAddress, input.lastAddress);
        if (stranded.length) throw new ConflictError('addresses_in_use', `VMs hold ${stranded.length} address(es) of pool ${name} outside the new range (${stranded.slice(0, 5).join(', ')})`, { addresses: stranded.slice(0, 50) }, 'firstAddress');
      }
      const created = await this.repo.upsertPool({ name, siteId: site.id, network: input.network, gateway: input.gateway, dns: input.dns, firstAddress: input.firstAddress, lastAddress: input.lastAddress });
      await this.audit.record({ action: created ? 'vps.ip_pool_create' : 'vps.ip_pool_update', targetType: 'ip_pool', targetId: name, changes: input });
      return { pool: await this.get(name), created };
    });
  }

  /** 409 `pool_in_use` while a hypervisor uses it or a VM holds one of its addresses. */
  remove(name: string): Promise<void> {
    return this.db.transaction(async () => {
      const p = await this.repo.pool(name);
      if (!p) throw new NotFoundError('ip pool', name);
      if (p.used || p.hypervisors) throw new ConflictError('pool_in_use', `pool ${name} serves ${p.hypervisors} hypervisor(s) and ${p.used} VM(s)`, { hypervisors: p.hypervisors, used: p.used });
      await this.repo.deletePool(p.id);
      await this.audit.record({ action: 'vps.ip_pool_delete', targetType: 'ip_pool', targetId: name });
    });
  }
}
