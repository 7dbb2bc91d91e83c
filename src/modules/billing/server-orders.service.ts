import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { DomainError } from '../../common/errors';
import { JobRegistry, type TaskContext } from '../../jobs/job-registry';
import { JobService } from '../../jobs/job.service';
import { AuditService } from '../audit/audit.service';
import { BmcAccess } from '../bmc/bmc-access.service';
import { ConsoleService } from '../console/console.service';
import { DevicesService } from '../inventory/devices.service';
import { SitesService } from '../inventory/sites.service';
import type { OS_TEMPLATES } from '../servers/install.schemas';
import { InstallService } from '../servers/install.service';
import { ServerLifecycleService } from '../servers/server-lifecycle.service';
import { WipeService } from '../servers/wipe.service';
import type { MatchedServer, OrderRow, ServerSpec } from './billing.repository';
import type { BillingEvent, DedicatedSpec } from './billing.schemas';
import { OrderBook, type Access, type Applied, type Fulfilment } from './order-book.service';

export const ORDER_PROVISION = 'order-provision';
export const ORDER_SUSPEND = 'order-suspend';
export const ORDER_UNSUSPEND = 'order-unsuspend';
export const ORDER_TERMINATE = 'order-terminate';

/** Attempts of the console-access step before the order goes on without IPKVM access. */
const CONSOLE_ATTEMPTS = 3;
/** Servers whose console access is checked, at most, when one order is placed. */
const CONSOLE_PROBES_PER_PLACEMENT = 5;

const cause = (orderId: string, note?: string) => ({ type: 'billing' as const, id: orderId, note });

/**
 * Dedicated servers for orders: a matching server reserved and installed, IPKVM access handed
 * out, billing told (one job: `order-provision`); suspend revokes access and powers off; unsuspend
 * powers on with new access; terminate revokes, powers off and wipes the server back into stock.
 */
@Injectable()
export class ServerOrders implements Fulfilment, OnModuleInit {
  constructor(
    private readonly book: OrderBook,
    private readonly registry: JobRegistry,
    private readonly jobs: JobService,
    private readonly install: InstallService,
    private readonly wipe: WipeService,
    private readonly lifecycle: ServerLifecycleService,
    private readonly console: ConsoleService,
    private readonly bmc: BmcAccess,
    private readonly sites: SitesService,
    private readonly devices: DevicesService,
    private readonly audit: AuditService,
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
  ) {}

  onModuleInit(): void {
    const power = (to: 'on' | 'off') => (ctx: TaskContext) => this.bmc.call(ctx.serverId!, ({ driver, target }) => driver.power(target, to));
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
        await this.book.repo.updateOrder(String(job.params.orderId), { state: 'provisioning', last_error: null });
      },
      onEnd: async (end) => {
        await this.install.installOnEnd(end);
        await this.book.provisioningEnded(end);
      },
    });
    this.registry.define({
      kind: ORDER_SUSPEND,
      hardware: true,
      tasks: [
        { name: 'revoke-console', timeoutMs: 120_000, run: (ctx) => this.revokeConsole(ctx, 'order suspended') },
        { name: 'power-off', timeoutMs: 60_000, run: power('off') },
        { name: 'mark-suspended', run: (ctx) => this.settle(ctx, 'suspended', 'order.suspended') },
      ],
      onEnd: (end) => this.book.stuck(end, 'suspend'),
    });
    this.registry.define({
      kind: ORDER_UNSUSPEND,
      hardware: true,
      tasks: [
        { name: 'power-on', timeoutMs: 60_000, run: power('on') },
        { name: 'mark-active', run: (ctx) => this.serverState(ctx, 'active') },
        { name: 'console-access', timeoutMs: 120_000, maxAttempts: CONSOLE_ATTEMPTS, run: (ctx) => this.grantAccess(ctx) },
        { name: 'notify', run: (ctx) => this.settle(ctx, 'active', 'order.unsuspended') },
      ],
      onEnd: (end) => this.book.stuck(end, 'unsuspend'),
    });
    this.registry.define({
      kind: ORDER_TERMINATE,
      hardware: true,
      tasks: [
        { name: 'revoke-console', timeoutMs: 120_000, run: (ctx) => this.revokeConsole(ctx, 'order terminated') },
        { name: 'power-off', timeoutMs: 60_000, run: power('off') },
        { name: 'release', run: (ctx) => this.release(ctx) },
      ],
      onEnd: (end) => this.book.stuck(end, 'terminate'),
    });
  }

  // ---- events

  /** Reserve a server for a dedicated order and start its provisioning. */
  async place(order: OrderRow): Promise<Applied> {
    const spec = order.plan_spec as DedicatedSpec;
    const opts = order.options as BillingEvent['order']['options'];
    const access = this.book.newAccess(opts.sshKeys);
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
      const off = await this.book.repo.matchingSitesWithoutBoot(match);
      if (off.length) return this.book.backorder(order, `matching server at a site whose boot services are on (boot_services_off at ${off.join(', ')}: no racksmith there has a boot address)`);
      const noConsole = [...unfit, ...(match.console ? (await this.book.repo.matchingWithoutConsole(match)).map((u) => `${u.name}: ${u.why}`) : [])];
      if (noConsole.length) return this.book.backorder(order, `matching server whose BMC can give the plan's IPKVM access (${noConsole.join('; ')})`);
      return this.book.backorder(order, image ? `matching server with a disk of at least ${Math.ceil(image.diskBytes / 1e9)} GB (image ${image.name})` : 'matching server');
    }
    await this.lifecycle.transition(server.id, 'reserved', cause(order.id, `order ${order.id}`), { from: ['available'] });
    const job = await this.jobs.create(ORDER_PROVISION, { siteId: server.site_id, siteCode: server.site_code, serverId: server.id }, { ...params, orderId: order.id });
    await this.book.provisioning(order, { server_id: server.id, site_id: server.site_id, job_id: job.id }, access, 'a server became available');
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
      const server = await this.book.repo.lockMatchingServer({ ...match, excludeIds }, preferredSite);
      if (!server || !match.console || server.privilege_check !== 'unknown') return { server, unfit };
      const why = await this.console.probe(server.id);
      if (!why) return { server, unfit };
      this.log.warn({ serverId: server.id, reason: why }, 'server passed over for an order: its BMC cannot give IPKVM access');
      unfit.push(`${server.name}: ${why}`);
      excludeIds.push(server.id);
    }
    return { unfit };
  }

  async suspend(order: OrderRow): Promise<Applied | null> {
    if (order.state === 'active') {
      const job = await this.serverJob(order, ORDER_SUSPEND);
      await this.book.repo.updateOrder(order.id, { state: 'suspending', job_id: job });
      return { state: 'processed', result: `suspending: job ${job}` };
    }
    if (order.state === 'unsuspending') {
      // Queued behind the unsuspend job, which ends the order active.
      const job = await this.serverJob(order, ORDER_SUSPEND, true);
      return { state: 'processed', result: `suspend queued behind the unsuspend: job ${job}` };
    }
    return null;
  }

  async unsuspend(order: OrderRow): Promise<Applied | null> {
    if (order.state !== 'suspended' && order.state !== 'suspending') return null;
    const job = await this.serverJob(order, ORDER_UNSUSPEND, order.state === 'suspending');
    await this.book.repo.updateOrder(order.id, { state: 'unsuspending', job_id: job });
    return { state: 'processed', result: `unsuspending: job ${job}` };
  }

  /** A provisioning still running is cancelled; the termination queues behind it. */
  async terminate(order: OrderRow, at: Date): Promise<Applied> {
    const running = order.job_id ? await this.jobs.get(order.job_id).catch(() => null) : null;
    if (running && (running.state === 'queued' || running.state === 'running')) await this.jobs.cancel(running.id);
    const job = await this.serverJob(order, ORDER_TERMINATE, true);
    await this.book.repo.updateOrder(order.id, { state: 'terminating', job_id: job, state_event_at: at });
    return { state: 'processed', result: `terminating: job ${job}` };
  }

  /** A hardware job on the order's server (queued behind the one it has, when asked). */
  private async serverJob(order: OrderRow, kind: string, queue = false): Promise<string> {
    const site = await this.sites.resolve(order.site_id!);
    const job = await this.jobs.create(kind, { siteId: site.id, siteCode: site.code, serverId: order.server_id! }, { orderId: order.id }, { queue });
    return job.id;
  }

  // ---- job steps

  /** IPKVM access for the customer; a grant left by a crash before its password was kept is replaced. */
  private async grantAccess(ctx: TaskContext): Promise<void> {
    const order = (await this.book.repo.order(String(ctx.params.orderId)))!;
    const access = this.book.access(order);
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
    await this.book.repo.updateOrder(order.id, { access_enc: this.book.seal(access) });
    await ctx.log(`IPKVM access granted to customer ${order.customer} until ${grant.expiresAt} (grant ${grant.id})`);
  }

  /**
   * IPKVM access could not be given after all: the server stays the customer's and the order goes
   * on (provisioned with `console: failed`); billing gets `order.console_failed`, the site a task.
   */
  private async consoleFailed(ctx: TaskContext, order: OrderRow, access: Access, reason: string): Promise<void> {
    access.consoleFailed = reason;
    await this.book.repo.updateOrder(order.id, { access_enc: this.book.seal(access) });
    await this.book.outbox.add(order.id, 'order.console_failed', { order: this.book.ref(order), console: { status: 'failed', reason } });
    const server = await this.devices.get(ctx.serverId!);
    await this.book.work.open(server.siteId, 'automation-failure', `IPKVM access for order ${order.id} on server ${server.name} failed: ${reason}. Give the customer console access by hand`, { type: 'order', id: order.id }, { jobId: ctx.jobId, serverId: server.id, reason });
    await ctx.log(`IPKVM access could not be given: ${reason}; the order goes on without it (billing is told, the site's work queue has a task)`, 'warn');
  }

  /** The IPKVM part of a billing event: the public half, and the secrets sealed in the outbox. */
  private ipkvmOf(access: Access) {
    const { ipkvm } = access;
    return {
      public: ipkvm ? { ipkvm: { host: ipkvm.host, username: ipkvm.username, consoleUrl: ipkvm.consoleUrl.split('#')[0], expiresAt: ipkvm.expiresAt } } : {},
      secret: ipkvm ? { ipkvm: { password: ipkvm.password, consoleUrl: ipkvm.consoleUrl } } : undefined,
    };
  }

  /** order.provisioned with the access details, the order active; a suspension that came meanwhile follows. */
  private async notifyProvisioned(ctx: TaskContext): Promise<void> {
    await this.book.withOrder(String(ctx.params.orderId), async (order) => {
      if (order.state !== 'provisioning') return ctx.log(`the order is ${order.state}: nothing to report`);
      const server = await this.devices.get(ctx.serverId!);
      const site = await this.sites.resolve(server.siteId);
      const access = this.book.access(order);
      const ipkvm = this.ipkvmOf(access);
      const address = (server.nics.find((n) => n.pxe && n.ip) ?? server.nics.find((n) => n.ip))?.ip ?? null;
      const payload = {
        order: this.book.ref(order),
        service: { server: server.name, site: site.code, hostname: String(ctx.params.hostname), os: String(ctx.params.os), ipv4: address, sshKeys: (ctx.params.sshKeys as string[]).length },
        ...ipkvm.public,
        ...(access.consoleFailed ? { console: { status: 'failed', reason: access.consoleFailed } } : {}),
      };
      const secrets = { ...(access.rootPassword ? { service: { rootPassword: access.rootPassword } } : {}), ...ipkvm.secret };
      await this.book.outbox.add(order.id, 'order.provisioned', payload, Object.keys(secrets).length ? secrets : undefined);
      // The outbox holds the secrets now (sealed, until the billing system has them).
      await this.book.repo.updateOrder(order.id, { state: 'active', access_enc: null });
      await this.audit.record({ action: 'order.provisioned', targetType: 'order', targetId: order.id, changes: { serverId: server.id } });
      await ctx.log(`order ${order.id} provisioned; the billing system is told`);
      if (order.suspend_requested) {
        const job = await this.serverJob({ ...order, site_id: server.siteId, server_id: server.id }, ORDER_SUSPEND, true);
        await this.book.repo.updateOrder(order.id, { state: 'suspending', job_id: job });
        await ctx.log(`the order was suspended in billing meanwhile: suspend job ${job} follows`);
      }
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
    await this.book.withOrder(String(ctx.params.orderId), async (order) => {
      await this.serverState(ctx, to);
      const ipkvm = this.ipkvmOf(this.book.access(order));
      await this.book.outbox.add(order.id, type, { order: this.book.ref(order), ...ipkvm.public }, ipkvm.secret);
      // A job queued behind this one (the next suspend/unsuspend) sets its own state when it runs.
      const current = order.job_id === ctx.jobId;
      await this.book.repo.updateOrder(order.id, { ...(current ? { state: to } : {}), access_enc: null, last_error: null });
      await ctx.log(`order ${order.id} ${to}`);
    });
  }

  /** Terminated: billing is told, and a wipe job (queued behind this one) clears the disks and returns the server to stock. */
  private async release(ctx: TaskContext): Promise<void> {
    await this.book.withOrder(String(ctx.params.orderId), async (order) => {
      if (order.state === 'terminated') return ctx.log('the order is already terminated');
      // With the site's boot services off the order still ends; the wipe is left to a person.
      const wipe = await this.wipe.request(ctx.serverId!, { mode: 'quick', queue: true }, { orderId: order.id }).catch((err: unknown) => {
        if (err instanceof DomainError && err.code === 'boot_services_off') return err;
        throw err;
      });
      await this.book.terminated(order);
      if (wipe instanceof DomainError) {
        await this.book.work.open(order.site_id!, 'automation-failure', `Order ${order.id} terminated, but its server was not wiped: ${wipe.message}. Wipe it once boot services are on`, { type: 'server', id: ctx.serverId! }, { orderId: order.id });
        return ctx.log(`order ${order.id} terminated; the server was not wiped (${wipe.message}); the site's work queue has a task`, 'warn');
      }
      await ctx.log(`order ${order.id} terminated; wipe job ${wipe.id} clears the disks and returns the server to stock`);
    });
  }
}
