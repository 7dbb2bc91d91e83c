import { Injectable, type OnModuleInit } from '@nestjs/common';
import { ConflictError, DomainError, NotFoundError, ValidationError } from '../../common/errors';
import { randomToken, safeEqual } from '../../common/crypto';
import { SecretBox } from '../../common/secret-box';
import { JobRegistry, TaskWaiting, type JobEnd, type TaskContext, type TaskDefinition } from '../../jobs/job-registry';
import { JobService, type JobView } from '../../jobs/job.service';
import { JobRepository } from '../../jobs/job.repository';
import { Database } from '../../database/database';
import { BmcAccess } from '../bmc/bmc-access.service';
import { SitesService } from '../inventory/sites.service';
import { OsImagesService } from '../images/os-images.service';
import { ImageCacheService, type CachedImage } from '../images/image-cache.service';
import { BootAgents } from '../boot/boot-agents.service';
import { InstallTemplatesService } from '../templates/install-templates.service';
import { WorkQueueService } from '../work-queue/work-queue.service';
import { InstallCallbackRepository } from './install.repository';
import { ServerRepository } from './servers.repository';
import { sha512Crypt } from './password-hash';
import { ServerLifecycleService } from './server-lifecycle.service';
import type { BulkInstallInput, InstallInput } from './install.schemas';

export const INSTALL = 'install';
/** The boot-asset manifest's entry a wipe job boots (the `os` of its params). */
export const WIPE_OS = 'wipe';
/** Whether the job waits for the installed system's first-boot report (jobs from before `firstBoot`: image installs). */
const expectsFirstBoot = (params: Record<string, unknown>) => params.firstBoot === true || (params.firstBoot === undefined && !!params.image);
/** How often a waiting install looks for its installer's report (a callback wakes it sooner). */
const INSTALLER_RECHECK_MS = 5000;
/** States an install may start from: a free server, one reserved for an order, a failed one, or a reinstall. */
const INSTALLABLE = ['available', 'reserved', 'failed', 'active'] as const;

/**
 * Install jobs: power off, one-time network boot, power on, wait for the installer's callback,
 * boot from disk, mark active. The hardware steps go through the driver the server's inventory
 * row names.
 */
@Injectable()
export class InstallService implements OnModuleInit {
  constructor(
    private readonly registry: JobRegistry,
    private readonly jobs: JobService,
    private readonly jobRows: JobRepository,
    private readonly lifecycle: ServerLifecycleService,
    private readonly sites: SitesService,
    private readonly callbacks: InstallCallbackRepository,
    private readonly secrets: SecretBox,
    private readonly bmc: BmcAccess,
    private readonly images: OsImagesService,
    private readonly servers: ServerRepository,
    private readonly work: WorkQueueService,
    private readonly db: Database,
    private readonly imageCache: ImageCacheService,
    private readonly templates: InstallTemplatesService,
    private readonly bootAgents: BootAgents,
  ) {}

  onModuleInit(): void {
    this.registry.define({
      kind: INSTALL,
      hardware: true,
      tasks: this.installTasks(),
      onRetry: (job) => this.installOnRetry(job),
      onEnd: async (end) => {
        await this.installOnEnd(end);
        await this.failureTask(end);
      },
    });
  }

  /**
   * The steps of an install: stage the image (image installs), mark deploying, power off,
   * one-time network boot, power on, wait for the installer, boot from disk, wait for the first
   * boot (images, and templates that write the report), mark active. Other job kinds that install (an order's provisioning)
   * run the same steps with the same params (`installParams`) and hooks.
   */
  installTasks(): TaskDefinition[] {
    const cause = (ctx: { jobId: string }) => ({ type: 'job' as const, id: ctx.jobId });
    return [
      { name: 'stage-image', timeoutMs: 60 * 60_000, run: (ctx) => this.stageImage(ctx) },
      {
        name: 'mark-deploying',
        run: async (ctx) => {
          const server = await this.lifecycle.get(ctx.serverId!);
          if (server.state !== 'deploying') await this.lifecycle.transition(ctx.serverId!, 'deploying', { ...cause(ctx), note: `installing ${String(ctx.params.os)}` }, { from: [...INSTALLABLE] });
          const script = ctx.params.postInstallScript;
          if (typeof script === 'string') await ctx.log(`post-install script (${Buffer.byteLength(script)} bytes), run once on the first boot:\n${script}`);
        },
      },
      ...this.netbootSteps('wait-for-installer'),
      this.bootFromDisk(),
      { name: 'wait-for-first-boot', maxAttempts: 1, timeoutMs: 240 * 60_000, run: (ctx) => this.waitForFirstBoot(ctx) },
      {
        name: 'mark-active',
        run: async (ctx) => {
          const server = await this.lifecycle.get(ctx.serverId!);
          if (server.state !== 'active') await this.lifecycle.transition(ctx.serverId!, 'active', cause(ctx), { from: ['deploying'] });
        },
      },
    ];
  }

  /**
   * Booting a server into something that calls back (an installer, the disk wipe): power off,
   * one-time network boot, power on, wait for the callback (a retry boots it again).
   */
  netbootSteps(waitName: string): TaskDefinition[] {
    return [
      { name: 'power-off', timeoutMs: 60_000, run: (ctx) => this.bmc.call(ctx.serverId!, ({ driver, target }) => driver.power(target, 'off')) },
      { name: 'pxe-once', timeoutMs: 60_000, run: (ctx) => this.bmc.call(ctx.serverId!, ({ driver, target }) => driver.setBootDevice(target, 'pxe', { once: true })) },
      { name: 'power-on', timeoutMs: 60_000, run: (ctx) => this.bmc.call(ctx.serverId!, ({ driver, target }) => driver.power(target, 'on')) },
      { name: waitName, maxAttempts: 1, retryFrom: 'power-off', timeoutMs: 240 * 60_000, run: (ctx) => this.waitForInstaller(ctx) },
    ];
  }

  /** The boot device back to disk, as the last step of a job that network-booted. */
  bootFromDisk(): TaskDefinition {
    return { name: 'boot-from-disk', timeoutMs: 60_000, run: (ctx) => this.bmc.call(ctx.serverId!, ({ driver, target }) => driver.setBootDevice(target, 'disk', { once: false })) };
  }

  async installOnRetry(job: { jobId: string; serverId: string | null }): Promise<void> {
    const server = await this.lifecycle.get(job.serverId!);
    if (server.state === 'failed') await this.lifecycle.transition(job.serverId!, 'deploying', { type: 'job', id: job.jobId, note: 'install retried' });
  }

  /** After a failed or cancelled install: the disk boots next, and the server shows the install did not finish. */
  installOnEnd(end: JobEnd): Promise<void> {
    return this.networkBootEnded(end, 'deploying', 'install');
  }

  /**
   * A failed install started through the API (orders open their own task): a person looks, in
   * the site's work queue. A deployed server that never phoned home ends here too.
   */
  private async failureTask(end: JobEnd): Promise<void> {
    if (end.state !== 'failed') return;
    const server = await this.lifecycle.get(end.serverId!);
    await this.work.open(server.siteId, 'automation-failure', `Install on server ${server.name} failed: look at job ${end.jobId}`, { type: 'server', id: server.id }, { jobId: end.jobId, error: end.error });
    await end.log(`server ${server.name}: the site's work queue has a task`, 'warn');
  }

  /** A network-booted job ended badly: the disk boots next; a server still `during` is marked failed. */
  async networkBootEnded(end: JobEnd, during: 'deploying' | 'wiping', what: string): Promise<void> {
    const disk = await this.bmc.call(end.serverId!, ({ driver, target }) => driver.setBootDevice(target, 'disk', { once: false })).then(
      () => null,
      (err: Error) => err.message,
    );
    if (disk) await end.log(`could not set the boot device back to disk: ${disk}`, 'error');
    const server = await this.lifecycle.get(end.serverId!);
    if (server.state === during) {
      await this.lifecycle.transition(end.serverId!, 'failed', { type: 'job', id: end.jobId, note: end.state === 'cancelled' ? `${what} cancelled` : (end.error ?? `${what} failed`) });
    }
    await end.log(`server left ${disk ? 'with its boot device unknown' : 'booting from disk'}${server.state === during ? ', marked failed' : ''}`, 'warn');
  }

  /**
   * The installer's report, or wait for it without holding a worker: checked again every few
   * seconds, and at once when the installer calls back (the callback wakes the job). The deadline
   * counts from the first check.
   */
  private async waitForInstaller(ctx: TaskContext): Promise<void> {
    const minutes = Number(ctx.params.installerTimeoutMinutes ?? 60);
    const who = ctx.params.os === WIPE_OS ? 'disk wipe' : 'installer';
    if (!ctx.waits) await ctx.log(`waiting for the ${who} to call back`);
    const outcome = await this.callbacks.outcome(ctx.jobId);
    if (outcome?.status === 'done') return ctx.log(`${who} finished${outcome.message ? `: ${outcome.message}` : ''}`);
    if (outcome?.status === 'failed') throw new Error(`${who} reported a failure: ${outcome.message ?? 'no details'}`);
    if (Date.now() > ctx.firstStartedAt.getTime() + minutes * 60_000) throw new Error(`the ${who} did not call back within ${minutes} minutes`);
    throw new TaskWaiting(INSTALLER_RECHECK_MS);
  }

  /**
   * An image install's first step, on the agent of the server's site (which serves the image to
   * the deploy ramdisk): the image is there and its SHA-256 is right, fetched from its url if not.
   * Nothing about the server has changed yet when this fails. Installs without an image go on.
   */
  private async stageImage(ctx: TaskContext): Promise<void> {
    const image = ctx.params.image as CachedImage | undefined;
    if (!image) return;
    const got = await this.imageCache.ensure(image, ctx.signal);
    const mib = Math.round(got.bytes / 2 ** 20);
    await ctx.log(got.how === 'fetched' ? `image ${image.name}: fetched ${mib} MiB from ${image.url}, SHA-256 ok` : `image ${image.name}: ${mib} MiB on this agent, SHA-256 ok${got.how === 'cached' ? ' (checked before)' : ''}`);
  }

  /**
   * The last wait of an install whose image seed or template writes the first-boot report: the
   * installed system's first boot phones home. Other installs go on at once.
   */
  private async waitForFirstBoot(ctx: TaskContext): Promise<void> {
    if (!expectsFirstBoot(ctx.params)) return;
    const minutes = Number(ctx.params.firstBootTimeoutMinutes ?? 30);
    if (!ctx.waits) await ctx.log('waiting for the installed system to phone home on its first boot');
    const booted = await this.callbacks.last(ctx.jobId, 'booted');
    if (booted) return ctx.log(`first boot reported${booted.message ? `: ${booted.message}` : ''}`);
    if (Date.now() > ctx.firstStartedAt.getTime() + minutes * 60_000) {
      throw new Error(`the installed system did not phone home within ${minutes} minutes of the install (it may not boot from its disk: check its console)`);
    }
    throw new TaskWaiting(INSTALLER_RECHECK_MS);
  }

  /** 202: the install job. A server in maintenance or in a state that cannot install is a 409. */
  async request(serverId: string, input: InstallInput): Promise<JobView> {
    const server = await this.lifecycle.get(serverId);
    if (server.maintenance.enabled) throw new ConflictError('in_maintenance', `server ${server.name} is in maintenance: no install until it is off`, { state: server.state });
    if (!(INSTALLABLE as readonly string[]).includes(server.state) && !input.queue) {
      throw new ConflictError('illegal_transition', `server ${server.name} is ${server.state}; an install starts from ${INSTALLABLE.join(', ')}`, { state: server.state });
    }
    const site = await this.sites.resolve(server.siteId);
    const params = await this.installParams(input);
    await this.checkDisk(serverId, server.name, params);
    await this.bootAgents.assertServing(site, `the install on server ${server.name}`);
    return this.jobs.create(INSTALL, { siteId: site.id, siteCode: site.code, serverId }, params, { queue: input.queue });
  }

  /** 409 `disk_too_small` when the image does not fit the biggest disk the server's model lists (before anything is powered on). */
  async checkDisk(serverId: string, name: string, params: Record<string, unknown>): Promise<void> {
    const image = params.image as { name: string; diskBytes: number } | undefined;
    if (!image) return;
    const disk = await this.servers.largestDiskBytes(serverId);
    if (disk !== null && disk < image.diskBytes) {
      throw new ConflictError('disk_too_small', `image ${image.name} needs a disk of ${image.diskBytes} bytes; server ${name}'s biggest disk has ${disk}`, { diskBytes: disk, imageBytes: image.diskBytes });
    }
  }

  /**
   * The params of a job that installs: the request without secrets in clear (a root password
   * becomes its SHA-512 crypt hash) and a sealed callback token, which marks the job as one an
   * installer reports to.
   */
  async installParams(input: Omit<InstallInput, 'queue' | 'firstBootTimeoutMinutes'> & { queue?: boolean; firstBootTimeoutMinutes?: number }): Promise<Record<string, unknown>> {
    const { queue: _queue, rootPassword, image: imageName, ...rest } = input;
    // The job keeps what it deploys: a later change of the image's row does not change a running install.
    const image = imageName ? await this.images.usable(imageName, input.os) : undefined;
    // An image's seed always runs it (deploy.sh writes the current first-boot script); a template only when it writes it.
    if (input.postInstallScript && !image && !(await this.templates.runsPostInstall(input.os))) {
      throw new ValidationError(`the ${input.os} install template does not run a post-install script; deploy an image, or use a template that writes firstBoot.postInstallBase64`, 'postInstallScript');
    }
    const rootPasswordHash = rootPassword ? await sha512Crypt(rootPassword) : rest.rootPasswordHash;
    return {
      ...rest,
      ...(image ? { image: { name: image.name, format: image.format, sha256: image.sha256, diskBytes: image.diskBytes, file: image.file, url: image.url } } : {}),
      // The image's seed always reports the first boot; an installer only when its template does.
      firstBoot: !!image || (await this.templates.phonesHome(input.os)),
      firstBootTimeoutMinutes: input.firstBootTimeoutMinutes ?? 30,
      rootPasswordHash,
      callbackToken: this.secrets.seal(randomToken(24)),
    };
  }

  /** Install on many servers; each is refused or accepted on its own, with the same rules. */
  async bulk(input: BulkInstallInput): Promise<{ accepted: { serverId: string; job: JobView }[]; refused: { serverId: string; error: { code: string; message: string } }[] }> {
    const { servers, ...common } = input;
    const accepted: { serverId: string; job: JobView }[] = [];
    const refused: { serverId: string; error: { code: string; message: string } }[] = [];
    for (const s of servers) {
      try {
        accepted.push({ serverId: s.id, job: await this.request(s.id, { ...common, hostname: s.hostname, network: { mode: 'dhcp' } }) });
      } catch (err) {
        if (!(err instanceof DomainError)) throw err;
        refused.push({ serverId: s.id, error: { code: err.code, message: err.message } });
      }
    }
    return { accepted, refused };
  }

  /**
   * The installed system's first boot (an image install): once, with the job's token, after the
   * deploy reported done and while the job still runs.
   */
  private async firstBoot(jobId: string, token: string, message?: string): Promise<void> {
    const job = await this.runningJobOfToken(jobId, token);
    if (!expectsFirstBoot(job.params)) throw new ConflictError('first_boot_not_expected', `job ${jobId} does not wait for a first boot (its template writes no first-boot report)`);
    if ((await this.callbacks.outcome(jobId))?.status !== 'done') throw new ConflictError('not_deployed', `the deploy of job ${jobId} has not reported done`);
    if (await this.callbacks.last(jobId, 'booted')) throw new ConflictError('callback_used', `the first boot of job ${jobId} was already reported`, { status: 'booted' });
    await this.callbacks.add(jobId, 'booted', message ?? null);
    await this.jobRows.wakeInTransaction(jobId, job.site_code);
  }

  /** Whether the job's installer (or deploy ramdisk) reported done. */
  async installerDone(jobId: string): Promise<boolean> {
    return (await this.callbacks.outcome(jobId))?.status === 'done';
  }

  /** The token an installer presents (rendered into its template by the network-boot code). */
  async callbackToken(jobId: string): Promise<string> {
    const job = await this.jobRows.job(jobId);
    if (!job?.params.callbackToken) throw new NotFoundError('install job', jobId);
    return this.secrets.open(String(job.params.callbackToken));
  }

  /**
   * The install job a callback token belongs to, while it may still be used: the job runs and no
   * done/failed was reported yet (the token is single-use for the outcome, and ends with the job).
   */
  async byToken(jobId: string, token: string): Promise<{ id: string; params: Record<string, unknown> }> {
    const job = await this.runningJobOfToken(jobId, token);
    const outcome = await this.callbacks.outcome(jobId);
    if (outcome) throw new ConflictError('callback_used', `the installer of job ${jobId} already reported ${outcome.status}`, { status: outcome.status });
    return { id: job.id, params: job.params };
  }

  /** The install job `token` is the callback token of (404 unknown, 401 wrong token), while it runs (409 `job_finished` after). */
  private async runningJobOfToken(jobId: string, token: string) {
    const job = await this.jobRows.job(jobId);
    if (!job?.params.callbackToken) throw new NotFoundError('install job', jobId);
    if (!safeEqual(token, this.secrets.open(String(job.params.callbackToken)))) throw new DomainError('bad_callback_token', 'the callback token does not match this job', 401, 'token');
    if (job.state !== 'queued' && job.state !== 'running') throw new ConflictError('job_finished', `job ${jobId} is already ${job.state}`, { state: job.state });
    return job;
  }

  /** An installer reports (authenticated by its job's token, not by an API token). */
  async callback(jobId: string, token: string, status: 'started' | 'progress' | 'done' | 'failed' | 'booted', message?: string): Promise<void> {
    // One job's reports one at a time: two outcomes (or two first boots) sent at once are one accepted, one 409.
    return this.db.withLock(`racksmith:install-callback:${jobId}`, async () => {
      if (status === 'booted') return this.firstBoot(jobId, token, message);
      await this.byToken(jobId, token);
      await this.callbacks.add(jobId, status, message ?? null);
      // The waiting task looks now, not at its next check.
      if (status === 'done' || status === 'failed') {
        const job = await this.jobRows.job(jobId);
        if (job) await this.jobRows.wakeInTransaction(jobId, job.site_code);
      }
      if (status === 'progress' || status === 'started') await this.jobRows.log(jobId, null, 'info', `installer: ${message ?? status}`);
    });
  }
}
