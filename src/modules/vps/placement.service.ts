import { Injectable } from '@nestjs/common';
import { ConflictError } from '../../common/errors';
import { Database } from '../../database/database';
import { VpsRepository, type HypervisorRow, type Need, type VmRow } from './vps.repository';

/**
 * Rounds a placement may wait while the hosts that could take the VM are being booked by others
 * (a few ms each, ~2 s in all): it never waits on a row lock, so two placements cannot deadlock.
 */
const ROUNDS = 400;

export interface Shortfall {
  hypervisor: string;
  state: string;
  lacks: { vcpus: number; ramMb: number; diskGb: number; address?: string };
}

/**
 * Where a VM goes: the enabled hypervisor it fits best (least RAM left over), booked in the same
 * statement that chooses it, so concurrent placements never overbook a host (and the database's
 * check refuses it if they ever would). Draining and down hosts get nothing; with anti-affinity a
 * customer's VMs go to hosts that have none of theirs yet.
 */
@Injectable()
export class PlacementService {
  constructor(
    private readonly repo: VpsRepository,
    private readonly db: Database,
  ) {}

  /** Book a host and record the VM (placed), in one transaction; 409 `no_capacity` naming the shortfall. */
  place(need: Need, vm: { name: string; orderId?: string | null; baseImage?: string; hostname?: string }): Promise<{ vm: VmRow; hypervisor: HypervisorRow }> {
    return this.db.transaction(async () => {
      for (let i = 0; i < ROUNDS; i++) {
        const host = await this.repo.book(need);
        if (host) {
          const row = await this.repo.insertVm({ name: vm.name, customer: need.customer, hypervisorId: host.device_id, siteId: host.site_id, vcpus: need.vcpus, ramMb: need.ramMb, diskGb: need.diskGb, antiAffinity: need.antiAffinity, orderId: vm.orderId ?? null, baseImage: vm.baseImage, hostname: vm.hostname });
          return { vm: row, hypervisor: host };
        }
        // Nothing free that nobody is booking: is there a host that could still take it once the
        // bookings in flight end? Then look again shortly; otherwise it does not fit.
        if (!(await this.repo.anyFits(need))) break;
        await new Promise((r) => setTimeout(r, 2 + Math.random() * 4));
      }
      throw this.shortfall(need, await this.repo.hypervisors({}));
    });
  }

  /** The 409 that says what is missing, and where it is closest to fitting. */
  shortfall(need: Need, hosts: HypervisorRow[]): ConflictError {
    const wanted = `${need.vcpus} vCPU, ${need.ramMb} MB RAM and ${need.diskGb} GB disk`;
    const inScope = hosts.filter((h) => !need.siteIds.length || need.siteIds.includes(h.site_id));
    const enabled = inScope.filter((h) => h.state === 'enabled');
    if (!enabled.length) {
      const counts = ['draining', 'down'].map((s) => `${inScope.filter((h) => h.state === s).length} ${s}`).join(', ');
      return new ConflictError('no_capacity', `no enabled hypervisor can take ${wanted} (${inScope.length ? counts : 'none in the inventory'})`, { required: need, closest: null });
    }
    const lack = (h: HypervisorRow) => ({
      vcpus: Math.max(0, need.vcpus - h.free_vcpus),
      ramMb: Math.max(0, need.ramMb - h.free_ram_mb),
      diskGb: Math.max(0, need.diskGb - h.free_storage_gb),
      ...(h.free_addresses === 0 ? { address: `a free address in pool ${h.ip_pool}` } : {}),
    });
    const score = (h: HypervisorRow) => {
      const l = lack(h);
      return l.vcpus / need.vcpus + l.ramMb / need.ramMb + l.diskGb / need.diskGb + (l.address ? 1 : 0);
    };
    const closest = [...enabled].sort((a, b) => score(a) - score(b))[0];
    const l = lack(closest);
    const parts = [l.vcpus && `${l.vcpus} vCPU`, l.ramMb && `${l.ramMb} MB RAM`, l.diskGb && `${l.diskGb} GB disk`, l.address].filter(Boolean).join(', ');
    const why = parts ? `the closest, ${closest.name}, lacks ${parts}` : `the hosts with room already run a VM of customer ${need.customer} (anti-affinity)`;
    const shortfall: Shortfall = { hypervisor: closest.name, state: closest.state, lacks: l };
    return new ConflictError('no_capacity', `no enabled hypervisor can take ${wanted}: ${why}`, { required: need, closest: shortfall });
  }
}
