import { createHash } from 'node:crypto';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { AppConfig, type Config } from '../../config/config';
import { ConflictError, ValidationError } from '../../common/errors';
import { JobRegistry, type JobEnd, type TaskContext } from '../../jobs/job-registry';
import { JobService } from '../../jobs/job.service';
import { AuditService } from '../audit/audit.service';
import { SitesService } from '../inventory/sites.service';
import { VmConsoleService } from '../vps/vm-console.service';
import { VpsService } from '../vps/vps.service';
import type { OrderRow } from './billing.repository';
import type { BillingEvent, VpsSpec } from './billing.schemas';
import { OrderBook, type Applied, type Fulfilment } from './order-book.service';

export const ORDER_VPS_PROVISION = 'order-vps-provision';
export const ORDER_VPS_SUSPEND = 'order-vps-suspend';
export const ORDER_VPS_UNSUSPEND = 'order-vps-unsuspend';
export const ORDER_VPS_TERMINATE = 'order-vps-terminate';

/** A VM name for an order id: readable, unique (a hash of the id keeps ids that differ only in punctuation apart). */
export function vmNameFor(orderId: string): string {
  const slug = orderId.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
  return `vps-${slug ? `${slug}-` : ''}${createHash('sha256').update(orderId).digest('hex').slice(0, 6)}`;
}

/**
 * VPS for orders: the VM placed and made, billing told (`order-vps-provision`); suspend pauses it,
 * unsuspend resumes it (a wish that comes while another of its jobs runs is applied when that job
 * ends); terminate cancels a provisioning in progress or removes the VM.
 */
@Injectable()
export class VpsOrders implements Fulfilment, OnModuleInit {
  constructor(
    private readonly book: OrderBook,
    private readonly registry: JobRegistry,
    private readonly jobs: JobService,
    private readonly vps: VpsService,
    private readonly vmConsoles: VmConsoleService,
    private readonly sites: SitesService,
    private readonly audit: AuditService,
    @Inject(AppConfig) private readonly config: Config,
  ) {}

  onModuleInit(): void {
    this.registry.define({
      kind: ORDER_VPS_PROVISION,
      hardware: false,
      tasks: [...this.vps.createTasks(), { name: 'notify', run: (ctx) => this.notifyVps(ctx) }],
      onRetry: async (job) => {
        await this.vps.createRetried(job);
        await this.book.repo.updateOrder(String(job.params.orderId), { state: 'provisioning', last_error: null });
      },
      onEnd: async (end) => {
        await this.vps.createEnded(end);
        await this.book.provisioningEnded(end);
        await this.provisionEnded(end);
      },
    });
    this.registry.define({
      kind: ORDER_VPS_SUSPEND,
      hardware: false,
      tasks: [this.vps.actionTask('suspend'), { name: 'mark-suspended', run: (ctx) => this.settle(ctx, 'suspended') }],
      onEnd: (end) => this.book.stuck(end, 'suspend'),
    });
    this.registry.define({
      kind: ORDER_VPS_UNSUSPEND,
      hardware: false,
      tasks: [this.vps.actionTask('resume'), { name: 'mark-active', run: (ctx) => this.settle(ctx, 'active') }],
      onEnd: (end) => this.book.stuck(end, 'unsuspend'),
    });
    this.registry.define({
      kind: ORDER_VPS_TERMINATE,
      hardware: false,
      tasks: [...this.vps.deleteTasks(), { name: 'mark-terminated', run: (ctx) => this.removed(ctx) }],
      onEnd: (end) => this.book.stuck(end, 'terminate'),
    });
  }

  // ---- events

  /**
   * The VM placed (the preferred site first, then the plan's sites or any) and its provisioning
   * job started; no host with room → backordered; an image that is not (any more) usable → failed.
   */
  async place(order: OrderRow): Promise<Applied> {
    const spec = order.plan_spec as VpsSpec;
    const opts = order.options as BillingEvent['order']['options'];
    const planSites = await this.book.preferredSites({ ...order, options: {} });
    if (spec.sites?.length && !planSites.length) return this.book.backorder(order, `site among ${spec.sites.join(', ')}`);
    const preferred = opts.site ? (await this.sites.resolve(opts.site).catch(() => null))?.id : undefined;
    const rounds = [...(preferred && (!spec.sites?.length || planSites.includes(preferred)) ? [[preferred]] : []), planSites];
    const access = this.book.newAccess(opts.sshKeys);
    const name = vmNameFor(order.id);
    const input = {
      name,
      hostname: opts.hostname ?? name,
      customer: order.customer,
      vcpus: spec.vcpus,
      ramMb: spec.ramMb,
      diskGb: spec.diskGb,
      baseImage: opts.os ?? spec.image ?? 'debian-12',
      sshKeys: opts.sshKeys ?? [],
      rootPassword: access.rootPassword,
      antiAffinity: false,
      orderId: order.id,
    };
    for (const siteIds of rounds) {
      try {
        const { vm, job } = await this.vps.create(input, { kind: ORDER_VPS_PROVISION, params: { orderId: order.id }, siteIds });
        await this.book.provisioning(order, { vm_id: vm.id, site_id: vm.siteId, job_id: job.id }, access, 'VPS capacity became available');
        return { state: 'processed', result: `VM ${vm.name} placed on hypervisor ${vm.hypervisorId}; provisioning job ${job.id}` };
      } catch (err) {
        if (err instanceof ValidationError) return this.book.fail(order, `the VM cannot be made: ${err.message}`);
        if (!(err instanceof ConflictError && (err.code === 'no_capacity' || err.code === 'no_address'))) throw err;
      }
    }
    return this.book.backorder(order, `hypervisor with room (and an address) for ${spec.vcpus} vCPU, ${spec.ramMb} MB RAM and ${spec.diskGb} GB`);
  }

  suspend(order: OrderRow): Promise<Applied> {
    return this.power(order, 'suspend');
  }

  unsuspend(order: OrderRow): Promise<Applied> {
    return this.power(order, 'resume');
  }

  /**
   * Pause or resume the VM when the order's state calls for it; while another of its jobs runs,
   * the wish is recorded and the job that ends settles it (see settle).
   */
  private async power(order: OrderRow, action: 'suspend' | 'resume'): Promise<Applied> {
    const due = action === 'suspend' ? order.state === 'active' : order.state === 'suspended';
    if (!due) return { state: 'processed', result: `order is ${order.state}: ${action === 'suspend' ? 'suspension' : 'unsuspension'} recorded; applied when its current job ends` };
    const job = await this.powerJob(order, action);
    return { state: 'processed', result: `${action === 'suspend' ? 'suspending' : 'unsuspending'}: job ${job}` };
  }

  /** The VM paused or resumed by an order job; the order `suspending`/`unsuspending` meanwhile. `own`: the caller's job, still on the VM. */
  private async powerJob(order: OrderRow, action: 'suspend' | 'resume', own?: string): Promise<string> {
    const job = await this.vps.act(order.vm_id!, action, false, { kind: action === 'suspend' ? ORDER_VPS_SUSPEND : ORDER_VPS_UNSUSPEND, params: { orderId: order.id }, own });
    await this.book.repo.updateOrder(order.id, { state: action === 'suspend' ? 'suspending' : 'unsuspending', job_id: job.id });
    return job.id;
  }

  /**
   * A provisioning still running is cancelled (it removes what it made, and its end tells
   * billing); a VM that exists is removed by a terminate job. While the VM is busy with another
   * job the event is tried again.
   */
  async terminate(order: OrderRow, at: Date): Promise<Applied> {
    const running = order.job_id ? await this.jobs.get(order.job_id).catch(() => null) : null;
    if (order.state === 'provisioning' && running && (running.state === 'queued' || running.state === 'running')) {
      // The provisioning stops and removes what it made; its end finishes the termination (see provisionEnded).
      if (!running.cancelRequested) await this.jobs.cancel(running.id);
      await this.book.repo.updateOrder(order.id, { state: 'terminating', state_event_at: at });
      return { state: 'processed', result: `terminating: provisioning job ${running.id} cancelled; it removes what it made` };
    }
    const vm = await this.vps.get(order.vm_id!);
    if (vm.state === 'failed' || vm.state === 'deleted') {
      await this.book.terminated(order, { state_event_at: at });
      return { state: 'processed', result: `terminated; its VM was already ${vm.state}` };
    }
    const job = await this.vps.remove(vm.id, { kind: ORDER_VPS_TERMINATE, params: { orderId: order.id } });
    await this.book.repo.updateOrder(order.id, { state: 'terminating', job_id: job.id, state_event_at: at });
    return { state: 'processed', result: `terminating: job ${job.id} removes VM ${vm.name}` };
  }

  // ---- job steps

  /** order.provisioned for a VPS: the VM, its address (as its hypervisor knows it) and a generated root password when no SSH key was given. */
  private async notifyVps(ctx: TaskContext): Promise<void> {
    await this.book.withOrder(String(ctx.params.orderId), async (order) => {
      if (order.state === 'terminating') {
        // Terminated while its last steps ran (too late to cancel them): the VM goes again.
        const job = await this.vps.remove(String(ctx.params.vmId), { kind: ORDER_VPS_TERMINATE, params: { orderId: order.id }, own: ctx.jobId });
        await this.book.repo.updateOrder(order.id, { job_id: job.id });
        return ctx.log(`the order was terminated meanwhile: job ${job.id} removes the VM`);
      }
      if (order.state !== 'provisioning') return ctx.log(`the order is ${order.state}: nothing to report`);
      const vm = await this.vps.get(String(ctx.params.vmId));
      const site = await this.sites.resolve(vm.siteId);
      const { rootPassword } = this.book.access(order);
      const grant = order.suspend_requested ? null : await this.consoleFor(order);
      const payload = {
        order: this.book.ref(order),
        service: { vm: vm.name, vmId: vm.id, site: site.code, hostname: vm.hostname, image: vm.baseImage, size: vm.size, ipv4: vm.ipv4 ?? (await this.vps.ipv4(vm.id)), sshKeys: (ctx.params.sshKeys as string[]).length },
        ...(grant ? { console: { grantId: grant.id, expiresAt: grant.expiresAt } } : {}),
      };
      const secrets = { ...(rootPassword ? { service: { rootPassword } } : {}), ...(grant ? { console: { url: grant.consoleUrl } } : {}) };
      await this.book.outbox.add(order.id, 'order.provisioned', payload, Object.keys(secrets).length ? secrets : undefined);
      await this.book.repo.updateOrder(order.id, { state: 'active', access_enc: null });
      await this.audit.record({ action: 'order.provisioned', targetType: 'order', targetId: order.id, changes: { vmId: vm.id } });
      await ctx.log(`order ${order.id} provisioned; the billing system is told`);
      if (order.suspend_requested) await this.follow({ ...order, state: 'active' }, ctx);
    });
  }

  /** The customer's console link for the order's VM (RACKSMITH_BILLING_CONSOLE_TTL). */
  private consoleFor(order: OrderRow) {
    const baseUrl = this.config.http.publicUrl ?? `http://${this.config.http.host}:${this.config.http.port}`;
    return this.vmConsoles.create(order.vm_id!, { ttl: this.config.billing.consoleTtl }, baseUrl);
  }

  /** The end of a VPS suspend or unsuspend: billing told; a wish that came meanwhile (suspend ↔ unsuspend) follows. */
  private async settle(ctx: TaskContext, to: 'active' | 'suspended'): Promise<void> {
    await this.book.withOrder(String(ctx.params.orderId), async (order) => {
      const row = await this.book.repo.updateOrder(order.id, { state: to, last_error: null });
      // Console access ends with a suspension; an unsuspension hands out a new link.
      if (to === 'suspended') await this.vmConsoles.revokeAllForVm(order.vm_id!, 'order suspended');
      const grant = to === 'active' ? await this.consoleFor(order) : null;
      await this.book.outbox.add(
        order.id,
        to === 'suspended' ? 'order.suspended' : 'order.unsuspended',
        { order: this.book.ref(row), ...(grant ? { console: { grantId: grant.id, expiresAt: grant.expiresAt } } : {}) },
        grant ? { console: { url: grant.consoleUrl } } : undefined,
      );
      await ctx.log(`order ${order.id} ${to}`);
      await this.follow(row, ctx);
    });
  }

  /** Start the suspend or unsuspend the order's recorded wish calls for, if its state differs. */
  private async follow(order: OrderRow, ctx: TaskContext): Promise<void> {
    const action = order.state === 'active' && order.suspend_requested ? 'suspend' : order.state === 'suspended' && !order.suspend_requested ? 'resume' : null;
    if (!action) return;
    const job = await this.powerJob(order, action, ctx.jobId);
    await ctx.log(`billing ${action === 'suspend' ? 'suspended' : 'unsuspended'} the order meanwhile: job ${job} follows`);
  }

  /** A provisioning cancelled by a termination: what it made is gone (createEnded), so the order is terminated and billing told. */
  private async provisionEnded(end: JobEnd): Promise<void> {
    await this.book.withOrder(String(end.params.orderId), async (order) => {
      if (!order || order.state !== 'terminating' || order.job_id !== end.jobId) return;
      await this.book.terminated(order);
      await end.log(`order ${order.id} terminated while it was being provisioned; what was made is removed`);
    });
  }

  private async removed(ctx: TaskContext): Promise<void> {
    await this.book.withOrder(String(ctx.params.orderId), async (order) => {
      if (order.state === 'terminated') return ctx.log('the order is already terminated');
      await this.book.terminated(order);
      await ctx.log(`order ${order.id} terminated; its VM is removed and its capacity free`);
    });
  }
}
