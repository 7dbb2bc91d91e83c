import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '../../app.tokens';
import { Database } from '../../database/database';
import { ConflictError } from '../../common/errors';
import { BootAgentsRepository } from './boot-agents.repository';

const ANNOUNCE_EVERY_MS = 10_000;

/**
 * Which sites have network boot. A racksmith with a boot address (role all: every site; an agent:
 * its own) announces itself while it runs; an install, wipe or paid order that needs a network
 * boot checks here before anything is powered, and is refused with 409 `boot_services_off`.
 */
@Injectable()
export class BootAgents implements OnApplicationShutdown {
  readonly id = randomUUID();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly repo: BootAgentsRepository,
    private readonly db: Database,
    @Inject(LOGGER) private readonly log: Logger,
  ) {}

  /** Announce this process as the boot agent of `siteId` (null: every site), and keep announcing. */
  async start(a: { siteId: string | null; address: string; httpBase: string; services: Record<string, unknown> }): Promise<void> {
    const announce = () => this.repo.announce({ id: this.id, ...a });
    await announce();
    this.timer = setInterval(() => void this.db.background(announce).catch((err: Error) => this.log.warn({ err: err.message }, 'could not announce the boot services')), ANNOUNCE_EVERY_MS);
    this.timer.unref();
  }

  /** 409 `boot_services_off` unless a live boot agent covers the site. */
  async assertServing(site: { id: string; code: string }, what: string): Promise<void> {
    if (await this.repo.serving(site.id)) return;
    throw new ConflictError(
      'boot_services_off',
      `boot services are off at site ${site.code}: no racksmith there has a boot address (RACKSMITH_BOOT_ADDRESS), so ${what} cannot network-boot; nothing was powered`,
      { site: site.code },
    );
  }

  list() {
    return this.repo.list();
  }

  async onApplicationShutdown(): Promise<void> {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.repo.remove(this.id).catch(() => undefined);
  }
}
