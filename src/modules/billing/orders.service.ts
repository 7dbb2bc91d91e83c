import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { LOGGER } from '../../app.tokens';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { AppConfig, type Config } from '../../config/config';
import { ConflictError, DomainError, NotFoundError, ValidationError } from '../../common/errors';
import { randomString } from '../../common/crypto';
import { newestFirstPage, type Page } from '../../common/pagination';
import { SecretBox } from '../../common/secret-box';
import { Database } from '../../database/database';
import { JobRegistry, type JobEnd, type TaskContext } from '../../jobs/job-registry';
import { JobService } from '../../jobs/job.service';
import { AuditService } from '../audit/audit.service';
import { BmcAccess } from '../bmc/bmc-access.service';
import { ConsoleService } from '../console/console.service';
import { SitesService } from '../inventory/sites.service';
import { DevicesService } from '../inventory/devices.service';
import type { OS_TEMPLATES } from '../servers/install.schemas';
import { InstallService } from '../servers/install.service';
import { ServerLifecycleService } from '../servers/server-lifecycle.service';
import { WipeService } from '../servers/wipe.service';
import { WorkQueueService } from '../work-queue/work-queue.service';
import { ColocationService } from '../colocation/colocation.service';
import { VmConsoleService } from '../vps/vm-console.service';
import { VpsService } from '../vps/vps.service';
import { BillingRepository, type EventRow, type MatchedServer, type OrderRow, type ServerSpec } from './billing.repository';
import type { BillingEvent, DedicatedSpec, VpsSpec } from './billing.schemas';
import { OutboxService } from './outbox.service';
import { PlansService } from './plans.service';

export const ORDER_PROVISION = 'order-provision';
export const ORDER_SUSPEND = 'order-suspend';
export const ORDER_UNSUSPEND = 'order-unsuspend';
export const ORDER_TERMINATE = 'order-terminate';
export const ORDER_VPS_PROVISION = 'order-vps-provision';
export const ORDER_VPS_SUSPEND = 'order-vps-suspend';
export const ORDER_VPS_UNSUSPEND = 'order-vps-unsuspend';
export const ORDER_VPS_TERMINATE = 'order-vps-terminate';

export interface OrderView {
  id: string;
  customer: string;
  plan: string | null;
  kind: string | null;
  state: OrderRow['state'];
  siteId: string | null;
  serverId: string | null;
  vmId: string | null;
  jobId: string | null;
  suspendRequested: boolean;
  lastError: string | null;
  paidAt: string | null;
  backorderedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export function orderView(o: OrderRow): OrderView {
  return {
    id: o.id,
    customer: o.customer,
    plan: o.plan,
    kind: o.kind,
    state: o.state,
    siteId: o.site_id,
    serverId: o.server_id,
    vmId: o.vm_id,
    jobId: o.job_id,
    suspendRequested: o.suspend_requested,
    lastError: o.last_error,
    paidAt: o.paid_at?.toISOString() ?? null,
    backorderedAt: o.backordered_at?.toISOString() ?? null,
    createdAt: o.created_at.toISOString(),
    updatedAt: o.updated_at.toISOString(),
  };
}

/** What applying one event did: `ignored` events changed nothing (the result says why). */
export interface Applied {
  state: 'processed' | 'ignored';
  result: string;
}

/** Secrets an order carries until the billing system has them (sealed in orders.access_enc). */
interface Access {
  rootPassword?: string;
  ipkvm?: { grantId: string; host: string; username: string; password: string; consoleUrl: string; expiresAt: string };
  /** Why IPKVM access could not be given (the order was delivered without it). */
  consoleFailed?: string;
}

/** Attempts of the console-access step before the order goes on without IPKVM access. */
const CONSOLE_ATTEMPTS = 3;
/** Servers whose console access is checked, at most, when one order is placed. */
const CONSOLE_PROBES_PER_PLACEMENT = 5;
const PASSWORD_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
/** A VM name for an order id: readable, unique (a hash of the id keeps ids that differ only in punctuation apart). */
export function vmNameFor(orderId: string): string {
  const slug = orderId.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
  return `vps-${slug ? `${slug}-` : ''}${createHash('sha256').update(orderId).digest('hex').slice(0, 6)}`;
}

const cause = (orderId: string, note?: string) => ({ type: 'billing' as const, id: orderId, note });

/**
 * Orders from the billing system: each event applied once, in one transaction with the order
 * locked; the hardware work runs as jobs (provision = reserve + install + IPKVM access + notify;
 * suspend; unsuspend; terminate) that report back through the outbox.
 */
@Injectable()
export class OrdersService implements OnModuleInit {
  constructor(
    private readonly repo: BillingRepository,
    private readonly outbox: OutboxService,
    private readonly plans: PlansService,
    private readonly registry: JobRegistry,
    private readonly jobs: JobService,
    private readonly install: InstallService,
    private readonly wipe: WipeService,
    private readonly lifecycle: ServerLifecycleService,
    private readonly console: ConsoleService,
    private readonly bmc: BmcAccess,
    private readonly sites: SitesService,
    private readonly devices: DevicesService,
    private readonly work: WorkQueueService,
    private readonly colocation: ColocationService,
    private readonly vps: VpsService,
    private readonly vmConsoles: VmConsoleService,
    private readonly audit: AuditService,
    private readonly secrets: SecretBox,
    private readonly db: Database,
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
  ) {}

  onModuleInit(): void {
    const orderId = (ctx: { params: Record<string, unknown> }) => String(ctx.params.orderId);
    this.registry.define({
      kind: ORDER_PROVISION,
      hardware: true,
      tasks: [
        ...this.install.installTasks(),
        { name: 'console-access', timeoutMs: 120_000, maxAttempts: CONSOLE_ATTEMPTS, run: (ctx) => this.grantAccess(ctx) },
        { name: 'notify', run: (ctx) => this.notifyProvisioned(ctx) },
      ],
      onRetry: async (job) => {
        await this.install.installOnRetry(job);
        await this.repo.updateOrder(orderId(job), { state: 'provisioning', last_error: null });
      },
      onEnd: async (end) => {
        await this.install.installOnEnd(end);
        await this.orderFailed(end);
      },
    });
    this.registry.define({
      kind: ORDER_SUSPEND,
      hardware: true,
      tasks: [
        { name: 'revoke-console', timeoutMs: 120_000, run: (ctx) => this.revokeConsole(ctx, 'order suspended') },
        { name: 'power-off', timeoutMs: 60_000, run: (ctx) => this.bmc.call(ctx.serverId!, ({ driver, target }) => driver.power(target, 'off')) },
        { name: 'mark-suspended', run: (ctx) => this.settle(ctx, 'suspended', 'order.suspended') },
      ],
      onEnd: (end) => this.stuck(end, 'suspend'),
    });
    this.registry.define({
      kind: ORDER_UNSUSPEND,
      hardware: true,
      tasks: [
        { name: 'power-on', timeoutMs: 60_000, run: (ctx) => this.bmc.call(ctx.serverId!, ({ driver, target }) => driver.power(target, 'on')) },
        { name: 'mark-active', run: (ctx) => this.serverState(ctx, 'active') },
        { name: 'console-access', timeoutMs: 120_000, maxAttempts: CONSOLE_ATTEMPTS, run: (ctx) => this.grantAccess(ctx) },
        { name: 'notify', run: (ctx) => this.settle(ctx, 'active', 'order.unsuspended') },
      ],
      onEnd: (end) => this.stuck(end, 'unsuspend'),
    });
    this.defineVpsJobs();
    this.registry.define({
      kind: ORDER_TERMINATE,
      hardware: true,
      tasks: [
        { name: 'revoke-console', timeoutMs: 120_000, run: (ctx) => this.revokeConsole(ctx, 'order terminated') },
        { name: 'power-off', timeoutMs: 60_000, run: (ctx) => this.bmc.call(ctx.serverId!, ({ driver, target }) => driver.power(target, 'off')) },
        { name: 'release', run: (ctx) => this.release(ctx) },
      ],
      onEnd: (end) => this.stuck(end, 'terminate'),
    });
  }

  /** A VPS order's jobs: the VM made (VPS issue), then billing told; suspend pauses it, terminate removes it. */
  private defineVpsJobs(): void {
    this.registry.define({
      kind: ORDER_VPS_PROVISION,
      hardware: false,
      tasks: [...this.vps.createTasks(), { name: 'notify', run: (ctx) => this.notifyVps(ctx) }],
      onRetry: async (job) => {
        await this.vps.createRetried(job);
        await this.repo.updateOrder(String(job.params.orderId), { state: 'provisioning', last_error: null });
      },
      onEnd: async (end) => {
        await this.vps.createEnded(end);
        await this.orderFailed(end);
        await this.vpsProvisionEnded(end);
      },
    });
    this.registry.define({
      kind: ORDER_VPS_SUSPEND,
      hardware: false,
      tasks: [this.vps.actionTask('suspend'), { name: 'mark-suspended', run: (ctx) => this.settleVps(ctx, 'suspended') }],
      onEnd: (end) => this.stuck(end, 'suspend'),
    });
    this.registry.define({
      kind: ORDER_VPS_UNSUSPEND,
      hardware: false,
      tasks: [this.vps.actionTask('resume'), { name: 'mark-active', run: (ctx) => this.settleVps(ctx, 'active') }],
      onEnd: (end) => this.stuck(end, 'unsuspend'),
    });
    this.registry.define({
      kind: ORDER_VPS_TERMINATE,
      hardware: false,
      tasks: [...this.vps.deleteTasks(), { name: 'mark-terminated', run: (ctx) => this.terminatedVps(ctx) }],
      onEnd: (end) => this.stuck(end, 'terminate'),
    });
  }

  // ---- events

  /** Apply one inbox event (inside the caller's transaction, which holds the event row). */
  apply(ev: EventRow): Promise<Applied> {
    return this.db.withLock(`racksmith:order:${ev.order_id}`, async () => {
      const e = ev.payload as BillingEvent;
      const order = await this.repo.lockOrder(ev.order_id);
      if (order && order.customer !== e.order.customer) {
        return { state: 'ignored', result: `order ${order.id} belongs to customer ${order.customer}, the event names ${e.order.customer}` };
      }
      switch (ev.type) {
        case 'order.paid':
          return this.paid(order, e, ev.occurred_at);
        case 'order.suspended':
          return this.suspended(order, e, ev.occurred_at);
        case 'order.unsuspended':
          return this.unsuspended(order, e, ev.occurred_at);
        case 'order.terminated':
          return this.terminated(order, e, ev.occurred_at);
      }
    });
  }

  private async paid(order: OrderRow | undefined, e: BillingEvent, at: Date): Promise<Applied> {
    if (order && order.state !== 'unpaid') return { state: 'ignored', result: `order ${order.id} is already ${order.state}` };
    const plan = await this.plans.find(e.order.plan!);
    const fields = { customer: e.order.customer, plan: e.order.plan!, kind: plan?.kind ?? null, plan_spec: plan?.spec ?? null, options: e.order.options, paid_at: at };
    let row = order ? await this.repo.updateOrder(order.id, { ...fields, state: 'provisioning' }) : await this.repo.insertOrder({ id: e.order.id, ...fields, state: 'provisioning' });
    await this.audit.record({ action: 'order.paid', targetType: 'order', targetId: row.id, changes: { plan: row.plan, kind: row.kind } });
    if (!plan) return this.fail(row, `plan ${e.order.plan} does not exist (any more)`);
    return this.place(row);
  }

  /** Provision what the order's plan means (a server, or rack space), or backorder it. */
  private place(order: OrderRow): Promise<Applied> {
    if (order.kind === 'colocation') return this.placeColocation(order);
    return order.kind === 'vps' ? this.placeVps(order) : this.placeServer(order);
  }

  /**
   * A VPS order: the VM placed (the preferred site first, then the plan's sites or any) and its
   * provisioning job started; no host with room → backordered; an image that is not (any more)
   * usable → failed.
   */
  private async placeVps(order: OrderRow): Promise<Applied> {
    const spec = order.plan_spec as VpsSpec;
    const opts = order.options as BillingEvent['order']['options'];
    const planSites = await this.preferredSites({ ...order, options: {} });
    if (spec.sites?.length && !planSites.length) return this.backorder(order, `site among ${spec.sites.join(', ')}`);
    const preferred = opts.site ? (await this.sites.resolve(opts.site).catch(() => null))?.id : undefined;
    const rounds = [...(preferred && (!spec.sites?.length || planSites.includes(preferred)) ? [[preferred]] : []), planSites];
    const access: Access = {};
    if (!opts.sshKeys?.length) access.rootPassword = randomString(20, PASSWORD_ALPHABET);
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
        await this.provisioning(order, { vm_id: vm.id, site_id: vm.siteId, job_id: job.id }, access, 'VPS capacity became available');
        return { state: 'processed', result: `VM ${vm.name} placed on hypervisor ${vm.hypervisorId}; provisioning job ${job.id}` };
      } catch (err) {
        if (err instanceof ValidationError) return this.fail(order, `the VM cannot be made: ${err.message}`);
        if (!(err instanceof ConflictError && (err.code === 'no_capacity' || err.code === 'no_address'))) throw err;
      }
    }
    return this.backorder(order, `hypervisor with room (and an address) for ${spec.vcpus} vCPU, ${spec.ramMb} MB RAM and ${spec.diskGb} GB`);
  }

  /** Backordered: the site's work queue and billing are told; filled oldest first when stock returns. */
  private async backorder(order: OrderRow, what: string): Promise<Applied> {
    if (order.state === 'backordered') return { state: 'ignored', result: `still no ${what}` };
    const siteId = await this.siteFor(order);
    const row = await this.repo.updateOrder(order.id, { state: 'backordered', backordered_at: new Date(), site_id: siteId });
    await this.work.open(siteId, 'backorder', `No ${what} for paid order ${order.id} (plan ${order.plan}): add or free one`, { type: 'order', id: order.id }, { plan: order.plan, spec: order.plan_spec });
    await this.outbox.add(order.id, 'order.backordered', { order: this.ref(row), reason: `no ${what} is available; it is provisioned as soon as one is` });
    return { state: 'processed', result: `backordered: no ${what} available` };
  }

  /** Colocation: rack units and power reserved, the item expected and an intake task; billing told at once. */
  private async placeColocation(order: OrderRow): Promise<Applied> {
    const spec = order.plan_spec as { units: number; powerW: number; sites?: string[] };
    const siteIds = await this.preferredSites(order);
    // A plan limited to sites that do not exist here has nowhere to go: backordered, not placed anywhere.
    if (spec.sites?.length && !siteIds.length) return this.backorder(order, `site among ${spec.sites.join(', ')}`);
    const r = await this.colocation.reserveSpace({ orderId: order.id, customer: order.customer, siteIds, units: spec.units, powerW: spec.powerW });
    if (!r) return this.backorder(order, `rack space of ${spec.units}U with ${spec.powerW} W`);
    const row = await this.repo.updateOrder(order.id, { state: 'active', site_id: r.item.siteId, last_error: null });
    const site = await this.sites.resolve(r.item.siteId);
    await this.outbox.add(order.id, 'order.provisioned', {
      order: this.ref(row),
      colocation: { site: site.code, rack: r.rack, units: [r.position, r.position + spec.units - 1], powerW: spec.powerW, itemId: r.item.id, next: 'deliver the equipment; the site\'s intake task is open' },
    });
    if (order.state === 'backordered') await this.work.closeFor({ type: 'order', id: order.id }, 'backorder', 'rack space became available');
    await this.audit.record({ action: 'order.provisioned', targetType: 'order', targetId: order.id, changes: { colocationItemId: r.item.id } });
    return { state: 'processed', result: `rack ${r.rack} units ${r.position}-${r.position + spec.units - 1} and ${spec.powerW} W reserved; intake task opened` };
  }

  /** The order is provisioning what was reserved for it (its secrets sealed until billing has them); a backorder it had is closed. */
  private async provisioning(order: OrderRow, reserved: { server_id?: string; vm_id?: string; site_id: string; job_id: string }, access: Access, why: string): Promise<void> {
    await this.repo.updateOrder(order.id, { state: 'provisioning', ...reserved, access_enc: Object.keys(access).length ? this.secrets.seal(JSON.stringify(access)) : null, last_error: null });
    if (order.state === 'backordered') await this.work.closeFor({ type: 'order', id: order.id }, 'backorder', why);
  }

  /** Reserve a server for a dedicated order and start its provisioning. */
  private async placeServer(order: OrderRow): Promise<Applied> {
    const spec = order.plan_spec as DedicatedSpec;
    const opts = order.options as BillingEvent['order']['options'];
    const access: Access = {};
    if (!opts.sshKeys?.length) access.rootPassword = randomString(20, PASSWORD_ALPHABET);
    const os = (opts.os as (typeof OS_TEMPLATES)[number] | undefined) ?? spec.defaultOs;
    const params = await this.install.installParams({
      os,
      image: spec.images?.[os],
      hostname: opts.hostname ?? `srv-${order.id.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`.slice(0, 63).replace(/-+$/, ''),
      sshKeys: opts.sshKeys ?? [],
      rootPassword: access.rootPassword,
      diskLayout: spec.diskLayout,
      network: { mode: 'dhcp' },
      installerTimeoutMinutes: 60,
    });
    // An image needs a disk it fits on: a server whose model lists only smaller disks is not picked.
    const image = params.image as { name: string; diskBytes: number } | undefined;
    // Every dedicated order network-boots: only servers at a site whose boot services are on.
    const match = { ...spec, minLargestDiskBytes: image?.diskBytes, console: spec.ipkvm !== false };
    const { server, unfit } = await this.pickServer(match, order.options.site);
    if (!server) {
      const off = await this.repo.matchingSitesWithoutBoot(match);
      if (off.length) return this.backorder(order, `matching server at a site whose boot services are on (boot_services_off at ${off.join(', ')}: no racksmith there has a boot address)`);
      const noConsole = [...unfit, ...(match.console ? (await this.repo.matchingWithoutConsole(match)).map((u) => `${u.name}: ${u.why}`) : [])];
      if (noConsole.length) return this.backorder(order, `matching server whose BMC can give the plan's IPKVM access (${noConsole.join('; ')})`);
      return this.backorder(order, image ? `matching server with a disk of at least ${Math.ceil(image.diskBytes / 1e9)} GB (image ${image.name})` : 'matching server');
    }
    await this.lifecycle.transition(server.id, 'reserved', cause(order.id, `order ${order.id}`), { from: ['available'] });
    const job = await this.jobs.create(ORDER_PROVISION, { siteId: server.site_id, siteCode: server.site_code, serverId: server.id }, { ...params, orderId: order.id });
    await this.provisioning(order, { server_id: server.id, site_id: server.site_id, job_id: job.id }, access, 'a server became available');
    return { state: 'processed', result: `server ${server.id} reserved; provisioning job ${job.id}` };
  }

  /**
   * The server for a dedicated order, locked. With IPKVM in the plan, a BMC whose console access
   * was never checked is checked now (ConsoleService.probe); one that cannot give it is passed
   * over for the next, a few at most per placement.
   */
  private async pickServer(match: ServerSpec, preferredSite?: string): Promise<{ server?: MatchedServer; unfit: string[] }> {
    const unfit: string[] = [];
    const excludeIds: string[] = [];
    for (let i = 0; i < CONSOLE_PROBES_PER_PLACEMENT; i++) {
      const server = await this.repo.lockMatchingServer({ ...match, excludeIds }, preferredSite);
      if (!server || !match.console || server.privilege_check !== 'unknown') return { server, unfit };
      const why = await this.console.probe(server.id);
      if (!why) return { server, unfit };
      this.log.warn({ serverId: server.id, reason: why }, 'server passed over for an order: its BMC cannot give IPKVM access');
      unfit.push(`${server.name}: ${why}`);
      excludeIds.push(server.id);
    }
    return { unfit };
  }

  private async suspended(order: OrderRow | undefined, e: BillingEvent, at: Date): Promise<Applied> {
    if (!order) {
      await this.repo.insertOrder({ id: e.order.id, customer: e.order.customer, state: 'unpaid', suspend_requested: true, state_event_at: at });
      return { state: 'processed', result: 'suspension recorded before the payment; applied once the order is provisioned' };
    }
    if (order.state_event_at && order.state_event_at > at) return { state: 'ignored', result: 'a later suspend/unsuspend was already applied' };
    await this.repo.updateOrder(order.id, { suspend_requested: true, state_event_at: at });
    if (order.kind === 'colocation' && order.state === 'active') return this.colocationBy(order, 'suspended', 'Suspend', 'cut the power outlets and site access of the customer\'s equipment, as the suspension policy says');
    if (order.kind === 'vps') return this.vpsPower(order, 'suspend');
    if (order.state === 'active') {
      const job = await this.serverJob(order, ORDER_SUSPEND);
      await this.repo.updateOrder(order.id, { state: 'suspending', job_id: job });
      return { state: 'processed', result: `suspending: job ${job}` };
    }
    if (order.state === 'unsuspending') {
      // Queued behind the unsuspend job, which ends the order active.
      const job = await this.serverJob(order, ORDER_SUSPEND, true);
      return { state: 'processed', result: `suspend queued behind the unsuspend: job ${job}` };
    }
    return { state: 'processed', result: `order is ${order.state}: suspension recorded${['provisioning', 'backordered', 'unpaid'].includes(order.state) ? ', applied once it is provisioned' : ''}` };
  }

  private async unsuspended(order: OrderRow | undefined, e: BillingEvent, at: Date): Promise<Applied> {
    if (!order) {
      await this.repo.insertOrder({ id: e.order.id, customer: e.order.customer, state: 'unpaid', suspend_requested: false, state_event_at: at });
      return { state: 'processed', result: 'unsuspension recorded before the payment' };
    }
    if (order.state_event_at && order.state_event_at > at) return { state: 'ignored', result: 'a later suspend/unsuspend was already applied' };
    await this.repo.updateOrder(order.id, { suspend_requested: false, state_event_at: at });
    if (order.kind === 'colocation' && order.state === 'suspended') return this.colocationBy(order, 'active', 'Unsuspend', 'restore the power outlets and site access of the customer\'s equipment');
    if (order.kind === 'vps') return this.vpsPower(order, 'resume');
    if (order.state === 'suspended' || order.state === 'suspending') {
      const job = await this.serverJob(order, ORDER_UNSUSPEND, order.state === 'suspending');
      await this.repo.updateOrder(order.id, { state: 'unsuspending', job_id: job });
      return { state: 'processed', result: `unsuspending: job ${job}` };
    }
    return { state: 'processed', result: `order is ${order.state}: unsuspension recorded` };
  }

  private async terminated(order: OrderRow | undefined, e: BillingEvent, at: Date): Promise<Applied> {
    if (!order) {
      await this.repo.insertOrder({ id: e.order.id, customer: e.order.customer, state: 'terminated', state_event_at: at });
      return { state: 'processed', result: 'terminated before it was paid: a later payment event is ignored' };
    }
    if (order.state === 'terminated' || order.state === 'terminating') return { state: 'ignored', result: `order is already ${order.state}` };
    if (order.vm_id) return this.terminateVps(order, at);
    if (!order.server_id) {
      const row = await this.repo.updateOrder(order.id, { state: 'terminated', state_event_at: at });
      await this.work.closeFor({ type: 'order', id: order.id }, 'backorder', 'order terminated');
      if (order.state !== 'unpaid') await this.outbox.add(order.id, 'order.terminated', { order: this.ref(row) });
      if (order.kind === 'colocation' && (order.state === 'active' || order.state === 'suspended')) {
        await this.work.open(order.site_id!, 'removal', `Colocation order ${order.id} terminated: remove the customer's equipment (or the reservation) and free its units and power`, { type: 'order', id: order.id });
        return { state: 'processed', result: 'terminated; the site\'s work queue has the removal' };
      }
      return { state: 'processed', result: `terminated (it held no server)` };
    }
    // A provisioning still running is cancelled; termination queues behind it.
    const running = order.job_id ? await this.jobs.get(order.job_id).catch(() => null) : null;
    if (running && (running.state === 'queued' || running.state === 'running')) await this.jobs.cancel(running.id);
    const job = await this.serverJob(order, ORDER_TERMINATE, true);
    await this.repo.updateOrder(order.id, { state: 'terminating', job_id: job, state_event_at: at });
    return { state: 'processed', result: `terminating: job ${job}` };
  }

  /**
   * Suspend (pause) or resume a VPS order's VM, when its state calls for it; while another of its
   * jobs runs, the wish is recorded and the job that ends settles it (see settleVps).
   */
  private async vpsPower(order: OrderRow, action: 'suspend' | 'resume'): Promise<Applied> {
    const due = action === 'suspend' ? order.state === 'active' : order.state === 'suspended';
    if (!due) return { state: 'processed', result: `order is ${order.state}: ${action === 'suspend' ? 'suspension' : 'unsuspension'} recorded; applied when its current job ends` };
    const job = await this.vpsPowerJob(order, action);
    return { state: 'processed', result: `${action === 'suspend' ? 'suspending' : 'unsuspending'}: job ${job}` };
  }

  /** The VM paused or resumed by an order job; the order `suspending`/`unsuspending` meanwhile. `own`: the caller's job, still on the VM. */
  private async vpsPowerJob(order: OrderRow, action: 'suspend' | 'resume', own?: string): Promise<string> {
    const job = await this.vps.act(order.vm_id!, action, false, { kind: action === 'suspend' ? ORDER_VPS_SUSPEND : ORDER_VPS_UNSUSPEND, params: { orderId: order.id }, own });
    await this.repo.updateOrder(order.id, { state: action === 'suspend' ? 'suspending' : 'unsuspending', job_id: job.id });
    return job.id;
  }

  /**
   * A VPS order terminated: a provisioning still running is cancelled (it removes what it made,
   * and its end tells billing); a VM that exists is removed by a terminate job. While the VM is
   * busy with another job the event is tried again.
   */
  private async terminateVps(order: OrderRow, at: Date): Promise<Applied> {
    const running = order.job_id ? await this.jobs.get(order.job_id).catch(() => null) : null;
    if (order.state === 'provisioning' && running && (running.state === 'queued' || running.state === 'running')) {
      // The provisioning stops and removes what it made; its end finishes the termination (see vpsProvisionEnded).
      if (!running.cancelRequested) await this.jobs.cancel(running.id);
      await this.repo.updateOrder(order.id, { state: 'terminating', state_event_at: at });
      return { state: 'processed', result: `terminating: provisioning job ${running.id} cancelled; it removes what it made` };
    }
    const vm = await this.vps.get(order.vm_id!);
    if (vm.state === 'failed' || vm.state === 'deleted') {
      const row = await this.repo.updateOrder(order.id, { state: 'terminated', state_event_at: at, access_enc: null });
      await this.outbox.add(order.id, 'order.terminated', { order: this.ref(row) });
      return { state: 'processed', result: `terminated; its VM was already ${vm.state}` };
    }
    const job = await this.vps.remove(vm.id, { kind: ORDER_VPS_TERMINATE, params: { orderId: order.id } });
    await this.repo.updateOrder(order.id, { state: 'terminating', job_id: job.id, state_event_at: at });
    return { state: 'processed', result: `terminating: job ${job.id} removes VM ${vm.name}` };
  }

  /** Colocation has no hardware racksmith drives: the state changes, a person acts, billing is told. */
  private async colocationBy(order: OrderRow, to: 'active' | 'suspended', verb: string, what: string): Promise<Applied> {
    const row = await this.repo.updateOrder(order.id, { state: to });
    await this.work.open(order.site_id!, 'other', `${verb} colocation order ${order.id} of customer ${order.customer}: ${what}`, { type: 'order', id: order.id });
    await this.outbox.add(order.id, to === 'suspended' ? 'order.suspended' : 'order.unsuspended', { order: this.ref(row) });
    return { state: 'processed', result: `${to}; the site's work queue has the task` };
  }

  /** A hardware job on the order's server (queued behind the one it has, when asked). */
  private async serverJob(order: OrderRow, kind: string, queue = false): Promise<string> {
    const site = await this.sites.resolve(order.site_id!);
    const job = await this.jobs.create(kind, { siteId: site.id, siteCode: site.code, serverId: order.server_id! }, { orderId: order.id }, { queue });
    return job.id;
  }

  /**
   * Backordered orders, oldest first, get what became available (servers, hypervisor room, rack
   * space). All of them are looked at, a page per transaction; once an order of a plan found
   * nothing, the later orders of that plan wait for the next round (they would find nothing
   * either), so a long queue of one plan never starves the others. The number placed.
   */
  async fillBackorders(page = 50, maxPages = 100): Promise<number> {
    let placed = 0;
    const stuck = new Set<string>();
    let after: { at: Date; id: string } | undefined;
    for (let i = 0; i < maxPages; i++) {
      const orders = await this.db.transaction(async () => {
        const rows = await this.repo.lockBackordered(page, after);
        for (const order of rows) {
          if (stuck.has(String(order.plan))) continue;
          const r = await this.db.withLock(`racksmith:order:${order.id}`, async () => this.place((await this.repo.lockOrder(order.id))!));
          if (r.state === 'processed') placed++;
          else stuck.add(String(order.plan));
        }
        return rows;
      });
      if (orders.length < page) break;
      const last = orders[orders.length - 1]!;
      after = { at: last.backordered_at!, id: last.id };
    }
    return placed;
  }

  // ---- job steps

  /** IPKVM access for the customer; a grant left by a crash before its password was kept is replaced. */
  private async grantAccess(ctx: TaskContext): Promise<void> {
    const order = (await this.repo.order(String(ctx.params.orderId)))!;
    const access = this.access(order);
    if (access.ipkvm) return ctx.log('IPKVM access already granted');
    if (order.suspend_requested) return ctx.log('the order is suspended in billing: no IPKVM access until it is unsuspended');
    if ((order.plan_spec as DedicatedSpec | null)?.ipkvm === false) return ctx.log(`plan ${order.plan} has no IPKVM access`);
    for (const g of await this.console.list({ serverId: ctx.serverId!, customer: order.customer, live: true }, 100)) {
      await this.console.revoke(g.id, 'replaced: its password was not handed over', 'billing');
    }
    const baseUrl = this.config.http.publicUrl ?? `http://${this.config.http.host}:${this.config.http.port}`;
    let grant: Awaited<ReturnType<ConsoleService['create']>>;
    try {
      grant = await this.console.create(ctx.serverId!, { customer: order.customer, ttl: this.config.billing.consoleTtl }, baseUrl);
    } catch (err) {
      // A refusal (4xx) will not change on a retry; a BMC error gets the task's attempts first.
      if (!(err instanceof DomainError && err.status < 500) && ctx.attempt < CONSOLE_ATTEMPTS) throw err;
      return this.consoleFailed(ctx, order, access, (err as Error).message);
    }
    access.ipkvm = { grantId: grant.id, host: grant.bmcHost, username: grant.username, password: grant.password, consoleUrl: grant.consoleUrl, expiresAt: grant.expiresAt };
    await this.repo.updateOrder(order.id, { access_enc: this.secrets.seal(JSON.stringify(access)) });
    await ctx.log(`IPKVM access granted to customer ${order.customer} until ${grant.expiresAt} (grant ${grant.id})`);
  }

  /**
   * IPKVM access could not be given after all: the server stays the customer's and the order goes
   * on (provisioned with `console: failed`); billing gets `order.console_failed`, the site a task.
   */
  private async consoleFailed(ctx: TaskContext, order: OrderRow, access: Access, reason: string): Promise<void> {
    access.consoleFailed = reason;
    await this.repo.updateOrder(order.id, { access_enc: this.secrets.seal(JSON.stringify(access)) });
    await this.outbox.add(order.id, 'order.console_failed', { order: this.ref(order), console: { status: 'failed', reason } });
    const server = await this.devices.get(ctx.serverId!);
    await this.work.open(server.siteId, 'automation-failure', `IPKVM access for order ${order.id} on server ${server.name} failed: ${reason}. Give the customer console access by hand`, { type: 'order', id: order.id }, { jobId: ctx.jobId, serverId: server.id, reason });
    await ctx.log(`IPKVM access could not be given: ${reason}; the order goes on without it (billing is told, the site's work queue has a task)`, 'warn');
  }

  /** order.provisioned with the access details, the order active; a suspension that came meanwhile follows. */
  private async notifyProvisioned(ctx: TaskContext): Promise<void> {
    await this.db.withLock(`racksmith:order:${String(ctx.params.orderId)}`, async () => {
      const order = (await this.repo.lockOrder(String(ctx.params.orderId)))!;
      if (order.state !== 'provisioning') return ctx.log(`the order is ${order.state}: nothing to report`);
      const server = await this.devices.get(ctx.serverId!);
      const site = await this.sites.resolve(server.siteId);
      const { rootPassword, ipkvm, consoleFailed } = this.access(order);
      const address = (server.nics.find((n) => n.pxe && n.ip) ?? server.nics.find((n) => n.ip))?.ip ?? null;
      const payload = {
        order: this.ref(order),
        service: { server: server.name, site: site.code, hostname: String(ctx.params.hostname), os: String(ctx.params.os), ipv4: address, sshKeys: (ctx.params.sshKeys as string[]).length },
        ...(ipkvm ? { ipkvm: { host: ipkvm.host, username: ipkvm.username, consoleUrl: ipkvm.consoleUrl.split('#')[0], expiresAt: ipkvm.expiresAt } } : {}),
        ...(consoleFailed ? { console: { status: 'failed', reason: consoleFailed } } : {}),
      };
      const secrets = {
        ...(rootPassword ? { service: { rootPassword } } : {}),
        ...(ipkvm ? { ipkvm: { password: ipkvm.password, consoleUrl: ipkvm.consoleUrl } } : {}),
      };
      await this.outbox.add(order.id, 'order.provisioned', payload, Object.keys(secrets).length ? secrets : undefined);
      // The outbox holds the secrets now (sealed, until the billing system has them).
      await this.repo.updateOrder(order.id, { state: 'active', access_enc: null });
      await this.audit.record({ action: 'order.provisioned', targetType: 'order', targetId: order.id, changes: { serverId: server.id } });
      await ctx.log(`order ${order.id} provisioned; the billing system is told`);
      if (order.suspend_requested) {
        const job = await this.serverJob({ ...order, site_id: server.siteId, server_id: server.id }, ORDER_SUSPEND, true);
        await this.repo.updateOrder(order.id, { state: 'suspending', job_id: job });
        await ctx.log(`the order was suspended in billing meanwhile: suspend job ${job} follows`);
      }
    });
  }

  /** order.provisioned for a VPS: the VM, its address (as its hypervisor knows it) and a generated root password when no SSH key was given. */
  private async notifyVps(ctx: TaskContext): Promise<void> {
    await this.db.withLock(`racksmith:order:${String(ctx.params.orderId)}`, async () => {
      const order = (await this.repo.lockOrder(String(ctx.params.orderId)))!;
      if (order.state === 'terminating') {
        // Terminated while its last steps ran (too late to cancel them): the VM goes again.
        const job = await this.vps.remove(String(ctx.params.vmId), { kind: ORDER_VPS_TERMINATE, params: { orderId: order.id }, own: ctx.jobId });
        await this.repo.updateOrder(order.id, { job_id: job.id });
        return ctx.log(`the order was terminated meanwhile: job ${job.id} removes the VM`);
      }
      if (order.state !== 'provisioning') return ctx.log(`the order is ${order.state}: nothing to report`);
      const vm = await this.vps.get(String(ctx.params.vmId));
      const site = await this.sites.resolve(vm.siteId);
      const { rootPassword } = this.access(order);
      const grant = order.suspend_requested ? null : await this.vmConsoleFor(order);
      const payload = {
        order: this.ref(order),
        service: { vm: vm.name, vmId: vm.id, site: site.code, hostname: vm.hostname, image: vm.baseImage, size: vm.size, ipv4: vm.ipv4 ?? (await this.vps.ipv4(vm.id)), sshKeys: (ctx.params.sshKeys as string[]).length },
        ...(grant ? { console: { grantId: grant.id, expiresAt: grant.expiresAt } } : {}),
      };
      const secrets = { ...(rootPassword ? { service: { rootPassword } } : {}), ...(grant ? { console: { url: grant.consoleUrl } } : {}) };
      await this.outbox.add(order.id, 'order.provisioned', payload, Object.keys(secrets).length ? secrets : undefined);
      await this.repo.updateOrder(order.id, { state: 'active', access_enc: null });
      await this.audit.record({ action: 'order.provisioned', targetType: 'order', targetId: order.id, changes: { vmId: vm.id } });
      await ctx.log(`order ${order.id} provisioned; the billing system is told`);
      if (order.suspend_requested) await this.vpsFollow({ ...order, state: 'active' }, ctx);
    });
  }

  /** The customer's console link for the order's VM (RACKSMITH_BILLING_CONSOLE_TTL). */
  private vmConsoleFor(order: OrderRow) {
    const baseUrl = this.config.http.publicUrl ?? `http://${this.config.http.host}:${this.config.http.port}`;
    return this.vmConsoles.create(order.vm_id!, { ttl: this.config.billing.consoleTtl }, baseUrl);
  }

  /** The end of a VPS suspend or unsuspend: billing told; a wish that came meanwhile (suspend ↔ unsuspend) follows. */
  private async settleVps(ctx: TaskContext, to: 'active' | 'suspended'): Promise<void> {
    await this.db.withLock(`racksmith:order:${String(ctx.params.orderId)}`, async () => {
      const order = (await this.repo.lockOrder(String(ctx.params.orderId)))!;
      const row = await this.repo.updateOrder(order.id, { state: to, last_error: null });
      // Console access ends with a suspension; an unsuspension hands out a new link.
      if (to === 'suspended') await this.vmConsoles.revokeAllForVm(order.vm_id!, 'order suspended');
      const grant = to === 'active' ? await this.vmConsoleFor(order) : null;
      await this.outbox.add(
        order.id,
        to === 'suspended' ? 'order.suspended' : 'order.unsuspended',
        { order: this.ref(row), ...(grant ? { console: { grantId: grant.id, expiresAt: grant.expiresAt } } : {}) },
        grant ? { console: { url: grant.consoleUrl } } : undefined,
      );
      await ctx.log(`order ${order.id} ${to}`);
      await this.vpsFollow(row, ctx);
    });
  }

  /** Start the suspend or unsuspend the order's recorded wish calls for, if its state differs. */
  private async vpsFollow(order: OrderRow, ctx: TaskContext): Promise<void> {
    const action = order.state === 'active' && order.suspend_requested ? 'suspend' : order.state === 'suspended' && !order.suspend_requested ? 'resume' : null;
    if (!action) return;
    const job = await this.vpsPowerJob(order, action, ctx.jobId);
    await ctx.log(`billing ${action === 'suspend' ? 'suspended' : 'unsuspended'} the order meanwhile: job ${job} follows`);
  }

  /** A provisioning cancelled by a termination: what it made is gone (createEnded), so the order is terminated and billing told. */
  private async vpsProvisionEnded(end: JobEnd): Promise<void> {
    await this.db.withLock(`racksmith:order:${String(end.params.orderId)}`, async () => {
      const order = await this.repo.lockOrder(String(end.params.orderId));
      if (!order || order.state !== 'terminating' || order.job_id !== end.jobId) return;
      const row = await this.repo.updateOrder(order.id, { state: 'terminated', access_enc: null });
      await this.outbox.add(order.id, 'order.terminated', { order: this.ref(row) });
      await end.log(`order ${order.id} terminated while it was being provisioned; what was made is removed`);
    });
  }

  private async terminatedVps(ctx: TaskContext): Promise<void> {
    await this.db.withLock(`racksmith:order:${String(ctx.params.orderId)}`, async () => {
      const order = (await this.repo.lockOrder(String(ctx.params.orderId)))!;
      if (order.state === 'terminated') return ctx.log('the order is already terminated');
      const row = await this.repo.updateOrder(order.id, { state: 'terminated', access_enc: null });
      await this.outbox.add(order.id, 'order.terminated', { order: this.ref(row) });
      await ctx.log(`order ${order.id} terminated; its VM is removed and its capacity free`);
    });
  }

  private async revokeConsole(ctx: TaskContext, reason: string): Promise<void> {
    const revoked = await this.console.revokeAllForServer(ctx.serverId!, reason);
    await ctx.log(revoked.length ? `revoked ${revoked.length} IPKVM grant(s)` : 'no live IPKVM grants');
  }

  private async serverState(ctx: TaskContext, to: 'active' | 'suspended'): Promise<void> {
    const server = await this.lifecycle.get(ctx.serverId!);
    if (server.state !== to) await this.lifecycle.transition(ctx.serverId!, to, cause(String(ctx.params.orderId), to === 'active' ? 'order unsuspended' : 'order suspended'));
  }

  /** The end of a suspend or unsuspend: server state, order state and the billing event, together. */
  private async settle(ctx: TaskContext, to: 'active' | 'suspended', type: 'order.suspended' | 'order.unsuspended'): Promise<void> {
    await this.db.withLock(`racksmith:order:${String(ctx.params.orderId)}`, async () => {
      const order = (await this.repo.lockOrder(String(ctx.params.orderId)))!;
      await this.serverState(ctx, to);
      const { ipkvm } = this.access(order);
      await this.outbox.add(
        order.id,
        type,
        { order: this.ref(order), ...(ipkvm ? { ipkvm: { host: ipkvm.host, username: ipkvm.username, consoleUrl: ipkvm.consoleUrl.split('#')[0], expiresAt: ipkvm.expiresAt } } : {}) },
        ipkvm ? { ipkvm: { password: ipkvm.password, consoleUrl: ipkvm.consoleUrl } } : undefined,
      );
      // A job queued behind this one (the next suspend/unsuspend) sets its own state when it runs.
      const current = order.job_id === ctx.jobId;
      await this.repo.updateOrder(order.id, { ...(current ? { state: to } : {}), access_enc: null, last_error: null });
      await ctx.log(`order ${order.id} ${to}`);
    });
  }

  /** Terminated: billing is told, and a wipe job (queued behind this one) clears the disks and returns the server to stock. */
  private async release(ctx: TaskContext): Promise<void> {
    await this.db.withLock(`racksmith:order:${String(ctx.params.orderId)}`, async () => {
      const order = (await this.repo.lockOrder(String(ctx.params.orderId)))!;
      if (order.state === 'terminated') return ctx.log('the order is already terminated');
      // With the site's boot services off the order still ends; the wipe is left to a person.
      const wipe = await this.wipe.request(ctx.serverId!, { mode: 'quick', queue: true }, { orderId: order.id }).catch((err: unknown) => {
        if (err instanceof DomainError && err.code === 'boot_services_off') return err;
        throw err;
      });
      const row = await this.repo.updateOrder(order.id, { state: 'terminated', access_enc: null });
      await this.outbox.add(order.id, 'order.terminated', { order: this.ref(row) });
      if (wipe instanceof DomainError) {
        await this.work.open(order.site_id!, 'automation-failure', `Order ${order.id} terminated, but its server was not wiped: ${wipe.message}. Wipe it once boot services are on`, { type: 'server', id: ctx.serverId! }, { orderId: order.id });
        return ctx.log(`order ${order.id} terminated; the server was not wiped (${wipe.message}); the site's work queue has a task`, 'warn');
      }
      await ctx.log(`order ${order.id} terminated; wipe job ${wipe.id} clears the disks and returns the server to stock`);
    });
  }

  /** A provisioning that failed or was cancelled: the order fails and billing is told (unless it was terminated). */
  private async orderFailed(end: JobEnd): Promise<void> {
    await this.db.withLock(`racksmith:order:${String(end.params.orderId)}`, async () => {
      const order = await this.repo.lockOrder(String(end.params.orderId));
      if (!order || order.state !== 'provisioning' || order.job_id !== end.jobId) return;
      await this.fail(order, end.state === 'cancelled' ? 'provisioning cancelled' : `provisioning failed: ${end.error ?? 'unknown error'}`);
      await this.work.open(order.site_id!, 'automation-failure', `Provisioning of order ${order.id} failed: look at job ${end.jobId}`, { type: 'order', id: order.id }, { jobId: end.jobId, error: end.error });
    });
  }

  /** A suspend, unsuspend or terminate job that did not finish: a person looks. */
  private async stuck(end: JobEnd, what: string): Promise<void> {
    const order = await this.repo.order(String(end.params.orderId));
    if (!order) return;
    await this.repo.updateOrder(order.id, { last_error: `${what} ${end.state}: ${end.error ?? ''}`.trim() });
    await this.work.open(order.site_id!, 'automation-failure', `The ${what} of order ${order.id} ${end.state}: finish it by hand or retry job ${end.jobId}`, { type: 'order', id: order.id }, { jobId: end.jobId, error: end.error });
    await end.log(`order ${order.id}: the ${what} did not finish; the site's work queue has a task`, 'warn');
  }

  private async fail(order: OrderRow, reason: string): Promise<Applied> {
    const row = await this.repo.updateOrder(order.id, { state: 'failed', last_error: reason, access_enc: null });
    await this.outbox.add(order.id, 'order.failed', { order: this.ref(row), reason });
    return { state: 'processed', result: `failed: ${reason}` };
  }

  private access(order: OrderRow): Access {
    return order.access_enc ? (JSON.parse(this.secrets.open(order.access_enc)) as Access) : {};
  }

  private ref(o: OrderRow) {
    return { id: o.id, customer: o.customer, plan: o.plan, state: o.state };
  }

  /** The order's preferred site, then its plan's sites, as ids (codes not in the inventory left out). */
  private async preferredSites(order: OrderRow): Promise<string[]> {
    const ids: string[] = [];
    for (const code of [order.options.site, ...((order.plan_spec?.sites as string[] | undefined) ?? [])]) {
      const site = code ? await this.sites.resolve(code).catch(() => null) : null;
      if (site && !ids.includes(site.id)) ids.push(site.id);
    }
    return ids;
  }

  /** The site an order's paperwork goes to: its own, the preferred one, the plan's first, or the first site. */
  private async siteFor(order: OrderRow): Promise<string> {
    if (order.site_id) return order.site_id;
    const [preferred] = await this.preferredSites(order);
    if (preferred) return preferred;
    const [first] = await this.sites.list();
    if (!first) throw new Error('no site in the inventory to queue the order\'s work at');
    return first.id;
  }

  // ---- reads

  async get(id: string): Promise<OrderView> {
    const o = await this.repo.order(id);
    if (!o) throw new NotFoundError('order', id);
    return orderView(o);
  }

  list(f: { state?: string; customer?: string }, limit: number, cursor?: string): Promise<Page<OrderView>> {
    return newestFirstPage(cursor, limit, (n, before) => this.repo.orders(f, n, before), (o) => ({ at: o.created_at, id: o.id }), orderView);
  }
}
