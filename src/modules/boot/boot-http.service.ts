import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { HealthService } from '../health/health.service';

const VIA_BOOT = Symbol('racksmith.bootListener');

/** Whether a request came in on the boot listener (the provisioning address), not the API's. */
export function viaBootListener(req: IncomingMessage): boolean {
  return (req as unknown as Record<symbol, unknown>)[VIA_BOOT] === true;
}

/**
 * The boot listener: an HTTP server of its own on the boot address (`RACKSMITH_BOOT_ADDRESS`,
 * port `RACKSMITH_BOOT_HTTP_PORT`), handing its requests to the same Fastify routes as the API.
 * It serves what machines on the provisioning network fetch (`/boot/...`) and the installers'
 * callbacks; the API listener does not serve `/boot/...` (see registerBootWeb).
 */
@Injectable()
export class BootHttp implements OnApplicationShutdown {
  private server?: Server;
  private bound?: AddressInfo;

  constructor(
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
    health: HealthService,
  ) {
    health.register({
      name: 'bootHttp',
      critical: false,
      run: async () =>
        this.bound
          ? { status: 'ok', detail: `serving /boot/ on ${this.bound.address}:${this.bound.port} (machines fetch ${this.base})` }
          : { status: 'off', detail: this.config.boot.address ? 'not started' : 'no boot address configured (RACKSMITH_BOOT_ADDRESS)' },
    });
  }

  /** Whether this process serves network boot (it has a boot address). */
  get enabled(): boolean {
    return !!this.config.boot.address;
  }

  /** The HTTP base machines fetch from: the configured URL, or the boot listener's address and port. */
  get base(): string {
    const b = this.config.boot;
    if (b.httpUrl) return b.httpUrl.replace(/\/+$/, '');
    if (!b.address) throw new Error('no boot address configured (RACKSMITH_BOOT_ADDRESS): boot services are off');
    return `http://${b.address}:${this.bound?.port ?? b.httpPort}`;
  }

  /** Where the boot listener listens, once started. */
  get listening(): { address: string; port: number } | undefined {
    return this.bound && { address: this.bound.address, port: this.bound.port };
  }

  /** Listen on the boot address (nothing when boot services are off). */
  async start(fastify: FastifyInstance): Promise<void> {
    const b = this.config.boot;
    if (!b.address || this.server) return;
    await fastify.ready();
    const server = createServer((req, res) => {
      (req as unknown as Record<symbol, unknown>)[VIA_BOOT] = true;
      fastify.routing(req, res);
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: b.address, port: b.httpPort }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: Error) => {
      throw new Error(`the boot listener could not listen on ${b.address}:${b.httpPort}: ${err.message} (RACKSMITH_BOOT_HTTP_PORT picks another port)`);
    });
    this.server = server;
    this.bound = server.address() as AddressInfo;
    this.log.info({ address: this.bound.address, port: this.bound.port, base: this.base }, 'boot listener serving');
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.bound = undefined;
    if (!server) return;
    server.closeIdleConnections();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      setTimeout(() => {
        server.closeAllConnections();
        resolve();
      }, 2000).unref();
    });
  }
}
