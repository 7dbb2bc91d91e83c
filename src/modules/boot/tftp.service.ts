import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { Counter, Gauge } from 'prom-client';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { HealthService } from '../health/health.service';
import { MetricsService } from '../metrics/metrics.service';
import { JobRepository } from '../../jobs/job.repository';
import { BootRepository } from './boot.repository';
import { DhcpService } from './dhcp.service';
import { TftpFiles, type GeneratedFile } from './tftp/tftp-files';
import { TftpServer, type TransferEnd } from './tftp/tftp-server';

/**
 * racksmith's TFTP server for the first-stage loaders (the Debian `ipxe` package's files) and
 * generated per-client files. Runs in roles all and agent when a boot address is configured;
 * without one it stays off and `/health` says so.
 */
@Injectable()
export class TftpService implements OnApplicationShutdown {
  private server?: TftpServer;
  private listening?: { address: string; port: number };
  private generated?: GeneratedFile;
  private readonly transfers: Counter<'outcome'>;
  private readonly bytes: Counter;

  constructor(
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
    private readonly dhcp: DhcpService,
    private readonly repo: BootRepository,
    private readonly jobs: JobRepository,
    health: HealthService,
    metrics: MetricsService,
  ) {
    this.transfers = new Counter({ name: 'racksmith_tftp_transfers_total', help: 'TFTP transfers by how they ended', labelNames: ['outcome'], registers: [metrics.registry] });
    this.bytes = new Counter({ name: 'racksmith_tftp_bytes_total', help: 'Bytes sent by TFTP transfers', registers: [metrics.registry] });
    const active = () => this.server?.active ?? 0;
    new Gauge({
      name: 'racksmith_tftp_active_transfers',
      help: 'TFTP transfers in progress',
      registers: [metrics.registry],
      collect() {
        this.set(active());
      },
    });
    health.register({
      name: 'tftp',
      critical: false,
      run: async () =>
        this.listening
          ? { status: 'ok', detail: `serving ${this.config.boot.tftpRoot} on ${this.listening.address}:${this.listening.port}, ${this.server!.active} transfers, ${this.server!.sender} sender` }
          : { status: 'off', detail: this.config.boot.address ? 'not started' : 'no boot address configured (RACKSMITH_BOOT_ADDRESS)' },
    });
  }

  /** Per-client files (iPXE scripts by MAC), asked before the root directory. */
  provide(generated: GeneratedFile): void {
    this.generated = generated;
  }

  async start(): Promise<void> {
    const b = this.config.boot;
    if (!b.address) return;
    const files = new TftpFiles(b.tftpRoot, (name, client) => (this.generated ? this.generated(name, client) : Promise.resolve(null)));
    const server = new TftpServer({ address: b.address, port: b.tftpPort, open: (n, c) => files.open(n, c), maxTransfers: b.tftpMaxTransfers, sender: b.tftpSender, spinUs: b.tftpSpinUs, log: this.log.child({ component: 'tftp' }) });
    server.on('transfer', (e: TransferEnd) => {
      this.transfers.inc({ outcome: e.outcome });
      this.bytes.inc(e.bytes);
      this.log.debug({ component: 'tftp', client: e.client.address, filename: e.filename, outcome: e.outcome, bytes: e.bytes, ms: e.ms }, 'tftp transfer ended');
      void this.milestone(e).catch((err: Error) => this.log.warn({ err: err.message }, 'could not log a boot milestone'));
    });
    this.listening = await server.start();
    this.server = server;
    this.log.info({ address: this.listening.address, port: this.listening.port, root: b.tftpRoot, sender: server.sender }, 'tftp serving');
  }

  /** A loader sent to a machine whose install waits: a line in its job's log. */
  private async milestone(e: TransferEnd): Promise<void> {
    const mac = await this.dhcp.macFor(e.client.address);
    const target = mac ? await this.repo.target(mac) : null;
    if (!target?.install_job) return;
    const how = e.outcome === 'done' ? `sent (${e.bytes} bytes in ${e.ms} ms, blksize ${e.blksize}, window ${e.windowsize})` : `not sent: ${e.outcome}`;
    await this.jobs.logToCurrentTask(target.install_job, e.outcome === 'done' ? 'info' : 'warn', `boot: TFTP ${e.filename} to ${mac} ${how}`);
  }

  get address(): { address: string; port: number } | undefined {
    return this.listening;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.server?.stop();
    this.server = undefined;
    this.listening = undefined;
  }
}
