import { Inject, Injectable } from '@nestjs/common';
import { AppConfig, type Config } from '../../config/config';
import { ConflictError, NotFoundError } from '../../common/errors';
import { requestContext } from '../../common/request-context';
import { ServerPowerService, type PowerView } from '../power/server-power.service';
import { VpsService } from '../vps/vps.service';
import type { JobView } from '../../jobs/job.service';
import { CustomerRepository } from './customer.repository';
import { CustomersService } from './customers.service';
import { TenancyRepository, type OwnedOrderRow, type OwnedServerRow, type OwnedVmRow } from './tenancy.repository';

export const CUSTOMER_POWER_ACTIONS = ['on', 'off', 'soft-off', 'reset', 'button'] as const;
export type CustomerPowerAction = (typeof CUSTOMER_POWER_ACTIONS)[number];
export const CUSTOMER_VM_ACTIONS = ['start', 'stop', 'reboot'] as const;
export type CustomerVmAction = (typeof CUSTOMER_VM_ACTIONS)[number];

export interface MyServerView {
  id: string;
  name: string;
  site: string;
  state: string;
  hostname: string | null;
  network: OwnedServerRow['network'];
  macs: string[];
  power: { state: string | null; reachable: boolean | null; checkedAt: string | null };
  order: { id: string; state: string } | null;
  job: { id: string; kind: string; state: string } | null;
  maintenance: boolean;
}

const serverView = (r: OwnedServerRow): MyServerView => ({
  id: r.id,
  name: r.name,
  site: r.site,
  state: r.lifecycle,
  hostname: r.hostname,
  network: r.network,
  macs: r.macs,
  power: { state: r.power_state, reachable: r.reachable, checkedAt: r.power_checked_at?.toISOString() ?? null },
  order: r.order_id ? { id: r.order_id, state: r.order_state! } : null,
  job: r.job_id ? { id: r.job_id, kind: r.job_kind!, state: r.job_state! } : null,
  maintenance: r.maintenance,
});

const vmView = (v: OwnedVmRow) => ({
  id: v.id,
  name: v.name,
  hostname: v.hostname,
  site: v.site,
  size: { vcpus: v.vcpus, ramMb: v.ram_mb, diskGb: v.disk_gb },
  image: v.base_image,
  ipv4: v.ipv4,
  state: v.state,
  jobId: v.job_id,
  createdAt: v.created_at.toISOString(),
});

const orderView = (o: OwnedOrderRow) => ({
  id: o.id,
  plan: o.plan,
  kind: o.kind,
  state: o.state,
  serverId: o.server_id,
  vmId: o.vm_id,
  lastError: o.last_error,
  paidAt: o.paid_at?.toISOString() ?? null,
  createdAt: o.created_at.toISOString(),
  updatedAt: o.updated_at.toISOString(),
});

/**
 * Everything a customer does for themselves. Every read and act starts from the customer of the
 * request's token and the resource's owner, so another customer's id is a 404 like an unknown one.
 */
@Injectable()
export class MyService {
  constructor(
    private readonly tenancy: TenancyRepository,
    private readonly customers: CustomersService,
    private readonly repo: CustomerRepository,
    private readonly power: ServerPowerService,
    private readonly vps: VpsService,
    @Inject(AppConfig) private readonly config: Config,
  ) {}

  /** The customer of this request (the guard let only customer tokens in). */
  me(): string {
    return requestContext.get()!.actor!.customerId!;
  }

  profile() {
    return this.customers.get(this.me());
  }

  async setSshKeys(sshKeys: string[]) {
    const me = await this.customers.get(this.me());
    return (await this.customers.upsert(me.id, { name: me.name, sshKeys })).customer;
  }

  async servers() {
    return { items: (await this.tenancy.listServers(this.me())).map(serverView) };
  }

  private async ownedServer(id: string): Promise<OwnedServerRow> {
    const row = await this.tenancy.server(this.me(), id);
    if (!row) throw new NotFoundError('server', id);
    return row;
  }

  async server(id: string): Promise<MyServerView> {
    return serverView(await this.ownedServer(id));
  }

  /**
   * A power action on the customer's own server. It never cycles a running server unless asked
   * for `reset`: `on` of a running one and `soft-off`/`button` are gentle. One action per
   * machine per cooldown; a failed action gives its cooldown back.
   */
  async powerServer(id: string, action: CustomerPowerAction): Promise<PowerView> {
    const s = await this.ownedServer(id);
    if (s.order_state && ['suspended', 'suspending', 'terminating'].includes(s.order_state)) {
      throw new ConflictError('server_suspended', `server ${s.name} is ${s.order_state}: no power actions until billing restores it`, { orderState: s.order_state });
    }
    if (s.maintenance) throw new ConflictError('in_maintenance', `server ${s.name} is in maintenance by the data-center staff: power actions wait until it is back`);
    if (s.job_id) throw new ConflictError('server_busy', `server ${s.name} is busy with job ${s.job_id} (${s.job_kind}): wait for it to end`, { jobId: s.job_id, kind: s.job_kind });
    if (s.lifecycle !== 'active') throw new ConflictError('server_busy', `server ${s.name} is ${s.lifecycle}: power actions are for an active server`, { state: s.lifecycle });
    await this.cooldown(s.id, action);
    try {
      return await this.power.act(s.id, action);
    } catch (err) {
      await this.repo.releaseCooldown(s.id);
      throw err;
    }
  }

  async vms() {
    return { items: (await this.tenancy.listVms(this.me())).map(vmView) };
  }

  private async ownedVm(id: string): Promise<OwnedVmRow> {
    const row = await this.tenancy.vm(this.me(), id);
    if (!row) throw new NotFoundError('vm', id);
    return row;
  }

  async vm(id: string) {
    return vmView(await this.ownedVm(id));
  }

  async powerVm(id: string, action: CustomerVmAction): Promise<JobView> {
    const vm = await this.ownedVm(id);
    await this.cooldown(vm.id, action);
    try {
      return await this.vps.act(vm.id, action);
    } catch (err) {
      await this.repo.releaseCooldown(vm.id);
      throw err;
    }
  }

  private async cooldown(targetId: string, action: string): Promise<void> {
    const seconds = this.config.customer.powerCooldown;
    if (!seconds) return;
    const taken = await this.repo.takeCooldown(targetId, this.me(), action, seconds);
    if (taken !== true) {
      throw new ConflictError('power_cooldown', `one power action per machine every ${seconds} s: retry in ${taken} s`, { retryAfterSeconds: taken, cooldownSeconds: seconds }, 'action');
    }
  }

  async orders() {
    return { items: (await this.tenancy.listOrders(this.me())).map(orderView) };
  }

  async order(id: string) {
    const row = await this.tenancy.order(this.me(), id);
    if (!row) throw new NotFoundError('order', id);
    return orderView(row);
  }

  tokens() {
    return this.customers.tokens(this.me()).then((items) => ({ items }));
  }

  createToken(input: { name: string; expiresAt?: Date }) {
    return this.customers.createToken(this.me(), input);
  }

  revokeToken(id: string) {
    return this.customers.revokeToken(this.me(), id);
  }
}
