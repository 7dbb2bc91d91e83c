import { Inject, Injectable } from '@nestjs/common';
import { AppConfig, type Config } from '../../config/config';
import { ConflictError, NotFoundError, ValidationError } from '../../common/errors';
import { AuditService } from '../audit/audit.service';
import { InstallService } from '../servers/install.service';
import { JobService } from '../../jobs/job.service';
import { JobStreams } from '../../jobs/job-streams.service';
import type { ReinstallInput } from './customers.schemas';
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
    private readonly install: InstallService,
    private readonly jobs: JobService,
    private readonly streams: JobStreams,
    private readonly audit: AuditService,
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
    this.assertActionable(s, 'power actions');
    if (s.lifecycle !== 'active') throw new ConflictError('server_busy', `server ${s.name} is ${s.lifecycle}: power actions are for an active server`, { state: s.lifecycle });
    await this.cooldown(s.id, action);
    try {
      return await this.power.act(s.id, action);
    } catch (err) {
      await this.repo.releaseCooldown(s.id);
      throw err;
    }
  }

  /** A rented server's own state checks before the customer acts on it: billing, staff and a running job come first. */
  private assertActionable(s: OwnedServerRow, what: string): void {
    if (s.order_state && ['suspended', 'suspending', 'terminating'].includes(s.order_state)) {
      throw new ConflictError('server_suspended', `server ${s.name} is ${s.order_state}: no ${what} until billing restores it`, { orderState: s.order_state });
    }
    if (s.maintenance) throw new ConflictError('in_maintenance', `server ${s.name} is in maintenance by the data-center staff: no ${what} until it is back`);
    if (s.job_id) throw new ConflictError('server_busy', `server ${s.name} is busy with job ${s.job_id} (${s.job_kind}): wait for it to end`, { jobId: s.job_id, kind: s.job_kind });
  }

  /**
   * Reinstall the customer's own server with an OS and disk layout the plan allows, their keys by
   * default: an install job like staff start, audited as the customer, which the customer follows
   * (GET /my/jobs/{id}, its logs and events). The server is theirs again, `active`, when the new
   * system phones home on its first boot.
   */
  async reinstall(id: string, input: ReinstallInput): Promise<JobView> {
    const s = await this.ownedServer(id);
    this.assertActionable(s, 'reinstall');
    if (!['active', 'failed'].includes(s.lifecycle)) throw new ConflictError('server_busy', `server ${s.name} is ${s.lifecycle}: a reinstall is for a delivered server`, { state: s.lifecycle });
    const spec = (s.plan_spec ?? {}) as { defaultOs?: string; images?: Record<string, string>; osChoices?: string[]; diskLayout?: 'single' | 'raid1'; diskLayouts?: ('single' | 'raid1')[] };
    const osChoices = spec.osChoices ?? [...new Set([spec.defaultOs ?? 'debian-12', ...Object.keys(spec.images ?? {})])];
    if (!osChoices.includes(input.os)) throw new ValidationError(`plan ${s.plan ?? '(none)'} offers ${osChoices.join(', ')}; not ${input.os}`, 'os', { choices: osChoices });
    const layouts = spec.diskLayouts ?? [spec.diskLayout ?? 'single'];
    // Unasked, the plan's own layout where the customer may choose it, else the first they may.
    const diskLayout = input.diskLayout ?? (spec.diskLayout && layouts.includes(spec.diskLayout) ? spec.diskLayout : layouts[0]!);
    if (!layouts.includes(diskLayout)) throw new ValidationError(`plan ${s.plan ?? '(none)'} offers the disk layouts ${layouts.join(', ')}; not ${diskLayout}`, 'diskLayout', { choices: layouts });
    const sshKeys = input.sshKeys ?? (await this.customers.get(this.me())).sshKeys;
    if (!sshKeys.length && !input.rootPasswordHash) throw new ValidationError('give sshKeys or rootPasswordHash: the customer has no SSH keys on file (PUT /api/v1/my/ssh-keys)', 'sshKeys');
    const image = spec.images?.[input.os];
    const job = await this.install.request(s.id, {
      os: input.os,
      ...(image ? { image } : {}),
      hostname: input.hostname,
      sshKeys,
      rootPasswordHash: input.rootPasswordHash,
      diskLayout,
      postInstallScript: input.postInstallScript,
      network: s.network?.mode === 'static' ? (s.network as { mode: 'static'; address: string; gateway: string; dns: string[] }) : { mode: 'dhcp' },
      queue: false,
      installerTimeoutMinutes: 60,
    });
    await this.audit.record({
      action: 'server.reinstall',
      targetType: 'server',
      targetId: s.id,
      changes: { os: input.os, image: image ?? null, hostname: input.hostname, diskLayout, sshKeys: sshKeys.length, postInstallScriptBytes: input.postInstallScript ? Buffer.byteLength(input.postInstallScript) : 0, jobId: job.id },
    });
    return job;
  }

  /** The jobs the customer may follow: their own and their orders'. */
  async myJobs() {
    const ids = await this.tenancy.ownedJobIds(this.me());
    return { items: await Promise.all(ids.map((id) => this.jobs.get(id))) };
  }

  /** 404 unless the job is one the customer may follow (an unknown job is not theirs either). */
  private async ownJob(id: string): Promise<void> {
    if (!(await this.tenancy.ownedJobIds(this.me(), id)).length) throw new NotFoundError('job', id);
  }

  async job(id: string): Promise<JobView> {
    await this.ownJob(id);
    return this.jobs.get(id);
  }

  async jobLogs(id: string, after?: string) {
    await this.ownJob(id);
    return this.jobs.logLines(id, after);
  }

  /** SSE messages of an own job (a 404 before the stream starts). */
  async jobEvents(id: string, lastEventId?: string) {
    await this.ownJob(id);
    return this.streams.messages(id, lastEventId);
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
