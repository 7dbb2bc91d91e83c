import { Injectable, type OnModuleInit } from '@nestjs/common';
import { ConflictError, NotFoundError, ValidationError } from '../../common/errors';
import { newestFirstPage, type Page } from '../../common/pagination';
import { Database } from '../../database/database';
import { HypervisorError, type HypervisorDriver, type HypervisorTarget } from '../../drivers/hypervisor/hypervisor-driver';
import { JobRegistry, type JobEnd, type TaskContext, type TaskDefinition } from '../../jobs/job-registry';
import { JobService, type JobView } from '../../jobs/job.service';
import { AuditService } from '../audit/audit.service';
import { SitesService } from '../inventory/sites.service';
import { sha512Crypt } from '../servers/password-hash';
import { HypervisorsService } from './hypervisors.service';
import { PlacementService } from './placement.service';
import { imageArtifacts, VmImagesService } from './vm-images.service';
import { VmConsoleService } from './vm-console.service';
import { domainXml, seedFiles, vmMac } from './vm-config';
import { VpsRepository, type HypervisorRow, type VmRow } from './vps.repository';
import type { VpsInput, VpsRebuildInput } from './vps.schemas';

export const VPS_CREATE = 'vps-create';
export const VPS_DELETE = 'vps-delete';
export const VPS_RESIZE = 'vps-resize';
export const VPS_REBUILD = 'vps-rebuild';
export const VM_ACTIONS = ['start', 'stop', 'reboot', 'suspend', 'resume'] as const;
export type VmAction = (typeof VM_ACTIONS)[number];
/** The state each action leaves a VM in, and the states it applies to. */
const ACTION_STATE: Record<VmAction, string> = { start: 'running', stop: 'stopped', reboot: 'running', suspend: 'paused', resume: 'running' };
const REBUILD_FROM = ['running', 'stopped', 'paused', 'error', 'missing'];
const ACTION_FROM: Record<VmAction, string[]> = { start: ['stopped'], stop: ['running', 'paused'], reboot: ['running'], suspend: ['running'], resume: ['paused'] };

interface Handle {
  vm: VmRow;
  host: HypervisorRow;
  driver: HypervisorDriver;
  target: HypervisorTarget;
}

/** A job made for the VM under another kind (a VPS order's), with its own params; `own` is the caller's job, which the VM may still be busy with. */
export interface JobAs {
  kind: string;
  params: Record<string, unknown>;
  own?: string;
}

export interface VmView {
  id: string;
  name: string;
  hostname: string | null;
  customer: string;
  hypervisorId: string;
  siteId: string;
  size: { vcpus: number; ramMb: number; diskGb: number };
  baseImage: string | null;
  /** Its address from its hypervisor's pool (null: none, or DHCP on the bridge). */
  ipv4: string | null;
  state: string;
  jobId: string | null;
  lastError: string | null;
  createdAt: string;
}

export const vmView = (v: VmRow): VmView => ({
  id: v.id,
  name: v.name,
  hostname: v.hostname,
  customer: v.customer,
  hypervisorId: v.hypervisor_id,
  siteId: v.site_id,
  size: { vcpus: v.vcpus, ramMb: v.ram_mb, diskGb: v.disk_gb },
  baseImage: v.base_image,
  ipv4: v.ipv4 ?? null,
  state: v.state,
  jobId: v.job_id,
  lastError: v.last_error,
  createdAt: v.created_at.toISOString(),
});

/**
 * VMs: placed (capacity booked) when asked for, then made on their hypervisor by a job (overlay
 * disk, seed, domain, start); a create that fails removes what it made and gives the capacity
 * back. Delete undefines the VM, removes its disks and gives the capacity back.
 */
@Injectable()
export class VpsService implements OnModuleInit {
  constructor(
    private readonly repo: VpsRepository,
    private readonly placement: PlacementService,
    private readonly images: VmImagesService,
    private readonly consoles: VmConsoleService,
    private readonly hypervisors: HypervisorsService,
    private readonly registry: JobRegistry,
    private readonly jobs: JobService,
    private readonly sites: SitesService,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  onModuleInit(): void {
    const on = this.on.bind(this);
    this.registry.define({ kind: VPS_CREATE, hardware: false, tasks: this.createTasks(), onRetry: (job) => this.createRetried(job), onEnd: (end) => this.createEnded(end) });
    this.registry.define({
      kind: VPS_REBUILD,
      hardware: false,
      tasks: [
        { name: 'power-off', timeoutMs: 120_000, run: on(async ({ vm, driver, target }) => driver.stop(target, vm.name, true)) },
        ...this.buildTasks('power-off'),
      ],
      onRetry: async (job) => this.repo.setVmState(String(job.params.vmId), 'rebuilding'),
      // The VM keeps its place (and its booking); it needs another rebuild or a delete.
      onEnd: async (end) => {
        await this.repo.setVmState(String(end.params.vmId), 'error', `rebuild ${end.state}: ${end.error ?? ''}`.trim());
        await end.log('the rebuild did not finish: the VM is in state error (rebuild it again or delete it)', 'error');
      },
    });
    this.registry.define({ kind: VPS_DELETE, hardware: false, tasks: this.deleteTasks() });
    // Power actions: one driver call, then the state it leaves the VM in.
    for (const action of VM_ACTIONS) {
      this.registry.define({
        kind: `vps-${action}`,
        hardware: false,
        tasks: [this.actionTask(action)],
      });
    }
    this.registry.define({
      kind: VPS_RESIZE,
      hardware: false,
      tasks: [
        {
          name: 'resize',
          timeoutMs: 300_000,
          run: on(async ({ vm, driver, target }, ctx) => {
            const size = { vcpus: Number(ctx.params.vcpus), ramMb: Number(ctx.params.ramMb), diskGb: Number(ctx.params.diskGb) };
            await driver.resize(target, vm.name, size);
            await this.repo.setVmSize(vm.id, size);
          }),
        },
      ],
      // Not resized: the booking goes back to the old size.
      onEnd: async (end) => {
        const vm = await this.repo.vm(String(end.params.vmId));
        if (vm) await this.repo.rebook(vm.hypervisor_id, { vcpus: Number(end.params.vcpus) - vm.vcpus, ramMb: Number(end.params.ramMb) - vm.ram_mb, diskGb: Number(end.params.diskGb) - vm.disk_gb }, -1);
      },
    });
  }

  private on(fn: (h: Handle, ctx: TaskContext) => Promise<void>): (ctx: TaskContext) => Promise<void> {
    return async (ctx) => fn(await this.handle(String(ctx.params.vmId)), ctx);
  }

  /** A create job's tasks (also the start of a VPS order's provisioning): the VM marked, then made. */
  createTasks(): TaskDefinition[] {
    return [{ name: 'mark-creating', run: async (ctx) => this.repo.setVmState(String(ctx.params.vmId), 'creating') }, ...this.buildTasks('mark-creating')];
  }

  /** A create that did not finish leaves nothing behind: what was made is removed, the capacity given back. */
  async createEnded(end: JobEnd): Promise<void> {
    const id = String(end.params.vmId);
    let cleaned: string | null = null;
    try {
      const { vm, driver, target } = await this.handle(id);
      await driver.remove(target, vm.name);
    } catch (err) {
      cleaned = (err as Error).message;
    }
    await this.release(id, 'failed', end.error ?? end.state);
    await end.log(cleaned ? `could not clean up on the hypervisor: ${cleaned}` : 'what the create made on the hypervisor was removed; its capacity is free again', cleaned ? 'error' : 'warn');
  }

  /** A failed create tried again: its capacity is booked again (409 `no_capacity` if its host has no room now). */
  async createRetried(job: { params: Record<string, unknown> }): Promise<void> {
    await this.db.transaction(async () => {
      const vm = await this.repo.lockVm(String(job.params.vmId));
      if (!vm || vm.state !== 'failed') return;
      if (!(await this.repo.rebook(vm.hypervisor_id, { vcpus: vm.vcpus, ramMb: vm.ram_mb, diskGb: vm.disk_gb }, 1))) {
        throw new ConflictError('no_capacity', `the hypervisor of VM ${vm.name} has no room for it any more: create a new VM instead`, {});
      }
      const host = (await this.repo.hypervisor(vm.hypervisor_id))!;
      if (host.ip_pool_id && !(await this.repo.allocate(host.ip_pool_id, vm.id))) throw new ConflictError('no_address', `address pool ${host.ip_pool} has no free address for VM ${vm.name} any more`, {});
      await this.repo.updateVm(vm.id, { state: 'placed', last_error: null });
    });
  }

  /** Undefine the VM and remove its disks, then give its capacity back. */
  deleteTasks(): TaskDefinition[] {
    return [
      { name: 'remove', timeoutMs: 300_000, run: this.on(async ({ vm, driver, target }) => driver.remove(target, vm.name)) },
      { name: 'release', run: async (ctx) => this.release(String(ctx.params.vmId), 'deleted', null) },
    ];
  }

  /** One power action on the VM, then the state it leaves the VM in. */
  actionTask(action: VmAction): TaskDefinition {
    return {
      name: action,
      timeoutMs: 180_000,
      run: this.on(async ({ vm, driver, target }, ctx) => {
        if (action === 'start') await driver.start(target, vm.name);
        else if (action === 'stop') await driver.stop(target, vm.name, ctx.params.force === true);
        else if (action === 'reboot') await driver.reboot(target, vm.name);
        else if (action === 'suspend') await driver.suspend(target, vm.name);
        else await driver.resume(target, vm.name);
        await this.repo.setVmState(vm.id, ACTION_STATE[action]);
      }),
    };
  }

  /**
   * The steps that make a VM on its host from its image (create and rebuild): the image's files
   * in the pool (fetched once per host), a fresh overlay disk, the seed, the domain, start.
   */
  private buildTasks(first: string): TaskDefinition[] {
    const on = this.on.bind(this);
    const image = async (vm: VmRow) => {
      const i = await this.images.find(vm.base_image!);
      if (!i) throw new HypervisorError(`image ${vm.base_image} was deleted while VM ${vm.name} was being made from it`);
      return i;
    };
    const steps: TaskDefinition[] = [
      {
        name: 'fetch-image',
        timeoutMs: 3_600_000,
        run: on(async ({ vm, driver, target }, ctx) => {
          const fetched = await driver.ensureFiles(target, imageArtifacts(await image(vm)));
          if (fetched.length) await ctx.log(`fetched onto ${target.name}: ${fetched.join(', ')}`);
        }),
      },
      { name: 'create-disk', timeoutMs: 300_000, run: on(async ({ vm, driver, target }) => void (await driver.createDisk(target, vm.name, (await image(vm)).file, vm.disk_gb))) },
      {
        name: 'write-seed',
        timeoutMs: 120_000,
        run: on(async ({ vm, driver, target }, ctx) => {
          // A rebuild is a new instance to cloud-init (it runs again); a create's instance is the VM.
          const instanceId = ctx.params.rebuild ? `${vm.id}-${ctx.jobId.slice(0, 8)}` : vm.id;
          const net = await this.repo.vmNetwork(vm.id);
          const network = net ? { mode: 'static' as const, address: `${net.address}/${net.prefix}`, gateway: net.gateway, dns: net.dns } : { mode: 'dhcp' as const };
          const files = seedFiles({ instanceId, hostname: vm.hostname ?? vm.name, sshKeys: (ctx.params.sshKeys as string[]) ?? [], rootPasswordHash: ctx.params.rootPasswordHash as string | undefined, network, mac: vmMac(vm.id) });
          await driver.writeSeed(target, vm.name, files);
        }),
      },
      {
        name: 'define',
        run: on(async ({ vm, host, driver, target }) => {
          const pool = await driver.poolPath(target);
          const boot = (await image(vm)).boot;
          const xml = domainXml({
            domainType: host.domain_type === 'auto' ? await driver.domainType(target) : host.domain_type,
            name: vm.name,
            uuid: vm.id,
            title: `${vm.hostname ?? vm.name} (customer ${vm.customer})`,
            vcpus: vm.vcpus,
            ramMb: vm.ram_mb,
            disk: `${pool}/${vm.name}.qcow2`,
            seed: `${pool}/${vm.name}-seed.iso`,
            mac: vmMac(vm.id),
            consoleLog: `${pool}/${vm.name}.console.log`,
            ...(host.bridge ? { bridge: host.bridge } : {}),
            ...(boot ? { kernel: `${pool}/${boot.kernel.file}`, ...(boot.initrd ? { initrd: `${pool}/${boot.initrd.file}` } : {}), cmdline: boot.cmdline } : {}),
          });
          await driver.define(target, vm.name, xml);
        }),
      },
      { name: 'start', timeoutMs: 120_000, run: on(async ({ vm, driver, target }) => driver.start(target, vm.name)) },
      { name: 'mark-running', run: async (ctx) => this.repo.setVmState(String(ctx.params.vmId), 'running') },
    ];
    // A retry builds the VM again from the start: what a failed attempt made was removed.
    return steps.map((t) => ({ ...t, retryFrom: first }));
  }

  /** A VM with a job in progress takes no other (409 naming it). */
  private async idle(vm: VmRow, own?: string): Promise<void> {
    const job = vm.job_id && vm.job_id !== own ? await this.jobs.get(vm.job_id).catch(() => null) : null;
    if (job && (job.state === 'queued' || job.state === 'running')) throw new ConflictError('vm_busy', `VM ${vm.name} is busy with job ${job.id} (${job.kind})`, { jobId: job.id, kind: job.kind });
  }

  /** 202: a power action; 409 when the VM is not in a state it applies to. */
  async act(id: string, action: VmAction, force = false, job: JobAs = { kind: `vps-${action}`, params: {} }): Promise<JobView> {
    return this.db.transaction(async () => {
      const vm = await this.repo.lockVm(id);
      if (!vm) throw new NotFoundError('vm', id);
      await this.idle(vm, job.own);
      if (!ACTION_FROM[action].includes(vm.state)) throw new ConflictError('illegal_transition', `VM ${vm.name} is ${vm.state}; ${action} applies to a VM that is ${ACTION_FROM[action].join(' or ')}`, { state: vm.state });
      const site = await this.sites.resolve(vm.site_id);
      const made = await this.jobs.create(job.kind, { siteId: site.id, siteCode: site.code }, { ...job.params, vmId: vm.id, force });
      await this.repo.setVmJob(vm.id, made.id);
      await this.audit.record({ action: `vps.${action}`, targetType: 'vm', targetId: vm.id, changes: { force } });
      return made;
    });
  }

  /** 202: an offline resize (the VM stopped); the new size is booked on its host now (409 `no_capacity` if it does not fit there). */
  async resize(id: string, size: { vcpus: number; ramMb: number; diskGb: number }): Promise<JobView> {
    return this.db.transaction(async () => {
      const vm = await this.repo.lockVm(id);
      if (!vm) throw new NotFoundError('vm', id);
      await this.idle(vm);
      if (vm.state !== 'stopped') throw new ConflictError('illegal_transition', `VM ${vm.name} is ${vm.state}; stop it before a resize`, { state: vm.state });
      if (size.diskGb < vm.disk_gb) throw new ValidationError(`diskGb: a disk grows, never shrinks (now ${vm.disk_gb} GB)`, 'diskGb');
      const delta = { vcpus: size.vcpus - vm.vcpus, ramMb: size.ramMb - vm.ram_mb, diskGb: size.diskGb - vm.disk_gb };
      if (!(await this.repo.rebook(vm.hypervisor_id, delta, 1))) {
        const host = (await this.repo.hypervisor(vm.hypervisor_id))!;
        throw new ConflictError('no_capacity', `hypervisor ${host.name} cannot take ${vm.name} at ${size.vcpus} vCPU, ${size.ramMb} MB RAM, ${size.diskGb} GB (free: ${host.free_vcpus} vCPU, ${host.free_ram_mb} MB, ${host.free_storage_gb} GB)`, { free: { vcpus: host.free_vcpus, ramMb: host.free_ram_mb, diskGb: host.free_storage_gb } });
      }
      const site = await this.sites.resolve(vm.site_id);
      const job = await this.jobs.create(VPS_RESIZE, { siteId: site.id, siteCode: site.code }, { vmId: vm.id, ...size });
      await this.repo.setVmJob(vm.id, job.id);
      await this.audit.record({ action: 'vps.resize', targetType: 'vm', targetId: vm.id, changes: size });
      return job;
    });
  }

  /** The VM, its hypervisor, the driver and how to reach it. */
  private handle(vmId: string): Promise<Handle> {
    return this.hypervisors.forVm(vmId);
  }

  /** The VM ends (deleted or failed): its capacity goes back to the host, once. */
  private release(vmId: string, state: 'deleted' | 'failed', error: string | null): Promise<void> {
    return this.db.transaction(async () => {
      const vm = await this.repo.lockVm(vmId);
      if (!vm || vm.state === 'deleted' || vm.state === 'failed') return;
      await this.repo.release(vm.hypervisor_id, vm);
      await this.repo.releaseAddress(vmId);
      await this.repo.setVmState(vmId, state, error);
      await this.consoles.revokeAllForVm(vmId, `VM ${state}`);
    });
  }

  /** 202: the VM placed (409 `no_capacity` naming the shortfall) and its create job. */
  async create(input: VpsInput, job: JobAs & { siteIds?: string[] } = { kind: VPS_CREATE, params: {} }): Promise<{ vm: VmView; job: JobView }> {
    await this.images.usable(input.baseImage, input.diskGb);
    const siteIds = job.siteIds ?? (input.site ? [(await this.sites.resolve(input.site, 'site')).id] : []);
    const rootPasswordHash = input.rootPassword ? await sha512Crypt(input.rootPassword) : undefined;
    return this.db.transaction(async () => {
      const { vm, hypervisor } = await this.placement.place(
        { vcpus: input.vcpus, ramMb: input.ramMb, diskGb: input.diskGb, customer: input.customer, antiAffinity: input.antiAffinity, siteIds },
        { name: input.name, baseImage: input.baseImage, hostname: input.hostname, orderId: input.orderId ?? null },
      );
      if (hypervisor.ip_pool_id) {
        vm.ipv4 = await this.repo.allocate(hypervisor.ip_pool_id, vm.id);
        if (!vm.ipv4) throw new ConflictError('no_address', `address pool ${hypervisor.ip_pool} of hypervisor ${hypervisor.name} has no free address`, { pool: hypervisor.ip_pool, hypervisor: hypervisor.name });
      }
      const site = await this.sites.resolve(hypervisor.site_id);
      const made = await this.jobs.create(job.kind, { siteId: site.id, siteCode: site.code }, { ...job.params, vmId: vm.id, sshKeys: input.sshKeys, rootPasswordHash });
      await this.repo.setVmJob(vm.id, made.id);
      await this.audit.record({ action: 'vps.create', targetType: 'vm', targetId: vm.id, changes: { ...input, rootPassword: undefined, hypervisor: hypervisor.name } });
      return { vm: vmView({ ...vm, job_id: made.id }), job: made };
    });
  }

  /** 202: the VM made again from an image (its own or another) with new access: its disk is replaced, its place and size kept. */
  async rebuild(id: string, input: VpsRebuildInput): Promise<JobView> {
    const rootPasswordHash = input.rootPassword ? await sha512Crypt(input.rootPassword) : undefined;
    return this.db.transaction(async () => {
      const vm = await this.repo.lockVm(id);
      if (!vm) throw new NotFoundError('vm', id);
      await this.idle(vm);
      if (!REBUILD_FROM.includes(vm.state)) throw new ConflictError('illegal_transition', `VM ${vm.name} is ${vm.state}; a rebuild applies to a VM that is ${REBUILD_FROM.join(', ')}`, { state: vm.state });
      const image = await this.images.usable(input.baseImage ?? vm.base_image!, vm.disk_gb);
      const site = await this.sites.resolve(vm.site_id);
      const job = await this.jobs.create(VPS_REBUILD, { siteId: site.id, siteCode: site.code }, { vmId: vm.id, rebuild: true, sshKeys: input.sshKeys, rootPasswordHash });
      await this.repo.updateVm(vm.id, { state: 'rebuilding', base_image: image.name, job_id: job.id, last_error: null });
      await this.audit.record({ action: 'vps.rebuild', targetType: 'vm', targetId: vm.id, changes: { ...input, rootPassword: undefined, baseImage: image.name } });
      return job;
    });
  }

  list(f: { customer?: string; hypervisorId?: string; state?: string; orderId?: string }, limit: number, cursor?: string): Promise<Page<VmView>> {
    return newestFirstPage(cursor, limit, (n, before) => this.repo.vms(f, n, before), (v) => ({ at: v.created_at, id: v.id }), vmView);
  }

  /** The VM's IPv4 address as its hypervisor knows it; null when it does not (or can't be asked). */
  async ipv4(id: string): Promise<string | null> {
    try {
      const { vm, driver, target } = await this.handle(id);
      return await driver.ipv4(target, vm.name);
    } catch {
      return null;
    }
  }

  async get(id: string): Promise<VmView> {
    const vm = await this.repo.vm(id);
    if (!vm) throw new NotFoundError('vm', id);
    return vmView(vm);
  }

  /** 202: the delete job. */
  async remove(id: string, job: JobAs = { kind: VPS_DELETE, params: {} }): Promise<JobView> {
    return this.db.transaction(async () => {
      const vm = await this.repo.lockVm(id);
      if (!vm) throw new NotFoundError('vm', id);
      if (vm.state === 'deleted' || vm.state === 'deleting') throw new ConflictError('vm_gone', `VM ${vm.name} is already ${vm.state}`, { state: vm.state });
      if (vm.state === 'creating' || vm.state === 'placed') throw new ConflictError('vm_busy', `VM ${vm.name} is still being created (job ${vm.job_id}); cancel that job or wait`, { state: vm.state, jobId: vm.job_id });
      await this.idle(vm, job.own);
      const site = await this.sites.resolve(vm.site_id);
      const made = await this.jobs.create(job.kind, { siteId: site.id, siteCode: site.code }, { ...job.params, vmId: vm.id });
      await this.repo.setVmState(vm.id, 'deleting');
      await this.repo.setVmJob(vm.id, made.id);
      await this.audit.record({ action: 'vps.delete', targetType: 'vm', targetId: vm.id });
      return made;
    });
  }
}
