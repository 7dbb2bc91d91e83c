import { Injectable, type OnModuleInit } from '@nestjs/common';
import { ConflictError } from '../../common/errors';
import { randomToken } from '../../common/crypto';
import { SecretBox } from '../../common/secret-box';
import { JobRegistry } from '../../jobs/job-registry';
import { JobService, type JobView } from '../../jobs/job.service';
import { SitesService } from '../inventory/sites.service';
import { BootAgents } from '../boot/boot-agents.service';
import { InstallService, WIPE_OS } from './install.service';
import { ServerLifecycleService } from './server-lifecycle.service';

export const WIPE = 'wipe';
/** States a wipe starts from: a returned server (active, suspended), a failed one, or a free one. */
const WIPEABLE = ['available', 'active', 'suspended', 'failed', 'wiping'] as const;
export type WipeMode = 'quick' | 'full';

/**
 * Wipe jobs: mark wiping, network-boot the server into the wipe image (the manifest's `wipe`
 * entry, written by `racksmith boot wipe-image`), wait for its report (every disk cleared), boot
 * from disk, mark available. A wipe that fails leaves the server `failed` with the image's reason.
 */
@Injectable()
export class WipeService implements OnModuleInit {
  constructor(
    private readonly registry: JobRegistry,
    private readonly jobs: JobService,
    private readonly lifecycle: ServerLifecycleService,
    private readonly sites: SitesService,
    private readonly install: InstallService,
    private readonly secrets: SecretBox,
    private readonly bootAgents: BootAgents,
  ) {}

  onModuleInit(): void {
    const cause = (ctx: { jobId: string }, note?: string) => ({ type: 'job' as const, id: ctx.jobId, note });
    this.registry.define({
      kind: WIPE,
      hardware: true,
      tasks: [
        {
          name: 'mark-wiping',
          run: async (ctx) => {
            const server = await this.lifecycle.get(ctx.serverId!);
            if (server.state !== 'wiping') await this.lifecycle.transition(ctx.serverId!, 'wiping', cause(ctx, `disk wipe (${String(ctx.params.wipeMode)})`), { from: [...WIPEABLE] });
          },
        },
        ...this.install.netbootSteps('wait-for-wipe'),
        this.install.bootFromDisk(),
        {
          name: 'mark-available',
          run: async (ctx) => {
            const server = await this.lifecycle.get(ctx.serverId!);
            if (server.state !== 'available') await this.lifecycle.transition(ctx.serverId!, 'available', cause(ctx, 'disks wiped'), { from: ['wiping'] });
          },
        },
      ],
      onRetry: async (job) => {
        const server = await this.lifecycle.get(job.serverId!);
        if (server.state === 'failed') await this.lifecycle.transition(job.serverId!, 'wiping', { type: 'job', id: job.jobId, note: 'wipe retried' });
      },
      onEnd: (end) => this.install.networkBootEnded(end, 'wiping', 'disk wipe'),
    });
  }

  /** 202: the wipe job. A server in maintenance, or in a state a wipe does not start from, is a 409. */
  async request(serverId: string, input: { mode: WipeMode; queue?: boolean }, extra: Record<string, unknown> = {}): Promise<JobView> {
    const server = await this.lifecycle.get(serverId);
    if (server.maintenance.enabled) throw new ConflictError('in_maintenance', `server ${server.name} is in maintenance: no wipe until it is off`, { state: server.state });
    if (!(WIPEABLE as readonly string[]).includes(server.state) && !input.queue) {
      throw new ConflictError('illegal_transition', `server ${server.name} is ${server.state}; a wipe starts from ${WIPEABLE.join(', ')}`, { state: server.state });
    }
    const site = await this.sites.resolve(server.siteId);
    await this.bootAgents.assertServing(site, `the wipe of server ${server.name}`);
    // The params of a network-booted job: the manifest entry to boot, and the callback token.
    const params = { ...extra, os: WIPE_OS, hostname: server.name, wipeMode: input.mode, installerTimeoutMinutes: input.mode === 'full' ? 240 : 30, callbackToken: this.secrets.seal(randomToken(24)) };
    return this.jobs.create(WIPE, { siteId: site.id, siteCode: site.code, serverId }, params, { queue: input.queue });
  }
}
