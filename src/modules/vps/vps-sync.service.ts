import { Inject, Injectable } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { LOGGER } from '../../app.tokens';
import { mapLimit } from '../../common/concurrency';
import { NotFoundError } from '../../common/errors';
import { AppConfig, type Config } from '../../config/config';
import type { VmPowerState } from '../../drivers/hypervisor/hypervisor-driver';
import { AuditService } from '../audit/audit.service';
import { HypervisorsService } from './hypervisors.service';
import { VpsRepository, type HypervisorRow } from './vps.repository';

export interface HostSync {
  hypervisorId: string;
  hypervisor: string;
  /** The host could not be asked: nothing was changed. */
  error: string | null;
  vms: number;
  changed: { vmId: string; name: string; from: string; to: string }[];
  /** Domains the host runs that racksmith did not make. */
  unmanaged: string[];
}

const STATE_OF: Partial<Record<VmPowerState, string>> = { running: 'running', 'shut off': 'stopped', paused: 'paused', absent: 'missing' };

/**
 * The status sync: each hypervisor is asked which VMs it runs (one `virsh list --all`), and the
 * state of every VM racksmith made there is corrected to what the host says (a guest shut down
 * from inside is `stopped`; one whose domain is gone is `missing`). VMs a job is working on are
 * left to the job; a change is audited. A host that can't be asked keeps its VMs' states and
 * shows the error on its row.
 */
@Injectable()
export class VpsSync {
  constructor(
    private readonly repo: VpsRepository,
    private readonly hypervisors: HypervisorsService,
    private readonly audit: AuditService,
    private readonly schedules: SchedulerRegistry,
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
  ) {}

  async syncAll(siteId?: string): Promise<HostSync[]> {
    const hosts = (await this.repo.hypervisors({ siteId })).filter((h) => h.state !== 'down');
    const out: HostSync[] = [];
    await mapLimit(hosts, 8, async (h) => void out.push(await this.syncHost(h)));
    return out.sort((a, b) => a.hypervisor.localeCompare(b.hypervisor));
  }

  async syncOne(id: string): Promise<HostSync> {
    const h = await this.repo.hypervisor(id);
    if (!h) throw new NotFoundError('hypervisor', id);
    return this.syncHost(h);
  }

  private async syncHost(h: HypervisorRow): Promise<HostSync> {
    const result: HostSync = { hypervisorId: h.device_id, hypervisor: h.name, error: null, vms: 0, changed: [], unmanaged: [] };
    const seenAt = await this.repo.now();
    // What racksmith believes is read before the host is asked: a change made after that is newer than what the host said.
    const vms = await this.repo.syncableVms(h.device_id);
    let listed: Map<string, VmPowerState>;
    try {
      const { driver, target } = await this.hypervisors.access(h);
      listed = await driver.list(target);
    } catch (err) {
      result.error = (err as Error).message;
      await this.repo.hypervisorSynced(h.device_id, result.error);
      this.log.warn({ hypervisor: h.name, err: result.error }, 'VM status sync: hypervisor not reachable');
      return result;
    }
    result.vms = vms.length;
    for (const vm of vms) {
      const to = STATE_OF[listed.get(vm.name) ?? 'absent'];
      if (!to || to === vm.state) continue;
      const note = to === 'missing' ? `hypervisor ${h.name} no longer has this VM (seen by the status sync)` : null;
      if (!(await this.repo.syncVmState(vm, to, seenAt, note))) continue;
      result.changed.push({ vmId: vm.id, name: vm.name, from: vm.state, to });
      await this.audit.record({ action: 'vps.state_sync', targetType: 'vm', targetId: vm.id, changes: { from: vm.state, to, hypervisor: h.name, seenBy: 'status sync' } });
      this.log.info({ vm: vm.name, hypervisor: h.name, from: vm.state, to }, 'VM state corrected by the status sync');
    }
    const ours = await this.repo.vmNames(h.device_id);
    result.unmanaged = [...listed.keys()].filter((n) => !ours.has(n)).sort();
    await this.repo.hypervisorSynced(h.device_id, null);
    return result;
  }

  /** Every `vps.syncInterval` seconds (roles all and agent). */
  start(siteId?: string): void {
    const every = this.config.vps.syncInterval;
    if (!every) return;
    const tick = () => void this.syncAll(siteId).catch((err: Error) => this.log.error({ err: err.message }, 'VM status sync failed'));
    this.schedules.addInterval('vps-sync', setInterval(tick, every * 1000));
  }
}
