import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { JobRepository } from '../../jobs/job.repository';
import { HealthService } from '../health/health.service';
import { MetricsService } from '../metrics/metrics.service';
import { BootHttp } from './boot-http.service';
import { BootRepository } from './boot.repository';
import { DhcpServer, type BootMilestone, type BootTarget, type DhcpBackend } from './dhcp/dhcp-server';

/**
 * racksmith's DHCP server (proxyDHCP by default, or authoritative for provisioning networks),
 * answering from the inventory: which server a MAC is, whether an install waits for it, and its
 * reserved address. Milestones (offer, ack) go into the install job's log.
 */
@Injectable()
export class DhcpService implements OnApplicationShutdown {
  private server?: DhcpServer;
  private ports?: { port: number; proxyPort?: number };
  private readonly answers: Counter<'type'>;

  constructor(
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
    private readonly repo: BootRepository,
    private readonly jobs: JobRepository,
    private readonly http: BootHttp,
    health: HealthService,
    metrics: MetricsService,
  ) {
    this.answers = new Counter({ name: 'racksmith_dhcp_answers_total', help: 'DHCP boot answers (offer, ack) sent', labelNames: ['type'], registers: [metrics.registry] });
    health.register({
      name: 'dhcp',
      critical: false,
      run: async () =>
        this.ports
          ? { status: 'ok', detail: `${this.config.boot.dhcpMode} on ${this.config.boot.address} port ${this.ports.port}${this.ports.proxyPort ? ` and ${this.ports.proxyPort}` : ''}` }
          : { status: 'off', detail: !this.config.boot.address ? 'no boot address configured (RACKSMITH_BOOT_ADDRESS)' : this.config.boot.dhcpMode === 'off' ? 'RACKSMITH_DHCP_MODE=off' : 'not started' },
    });
  }

  /** The inventory as the DHCP server sees it. */
  readonly backend: DhcpBackend = {
    target: async (mac) => {
      // One query per DHCP message: the device, its reservation's network and its waiting job.
      const row = await this.repo.target(mac);
      if (!row) return null;
      const n = row.network;
      const target: BootTarget = {
        serverId: row.id,
        name: row.name,
        action: row.install_job && (row.lifecycle === 'deploying' || row.lifecycle === 'wiping') ? 'install' : 'local',
        reservation: row.ip && n ? { ip: row.ip, network: { id: n.id, cidr: n.cidr, gateway: n.gateway, dns: n.dns, domain: n.domain, leaseSeconds: n.lease_seconds } } : null,
        jobId: row.install_job ?? undefined,
      };
      return target;
    },
    lease: (e) => this.repo.lease({ mac: e.mac, networkId: e.networkId, ip: e.ip, deviceId: e.serverId, state: e.state, seconds: e.seconds }),
    unknown: async (mac, info) => {
      this.log.info({ component: 'dhcp', mac, ...info }, 'dhcp: a machine racksmith does not know asked to boot');
      if (this.config.boot.discovery) await this.repo.discovered(mac, info.arch ?? null, info.vendorClass ?? null);
    },
  };

  async start(): Promise<void> {
    const b = this.config.boot;
    if (!b.address || b.dhcpMode === 'off') return;
    const server = new DhcpServer({
      mode: b.dhcpMode,
      bindAddress: b.dhcpBindAddress,
      serverAddress: b.address,
      port: b.dhcpPort,
      proxyPort: b.dhcpProxyPort,
      broadcastAddress: b.dhcpBroadcast,
      clientPort: b.dhcpClientPort,
      httpBase: this.http.base,
      backend: this.backend,
      log: this.log.child({ component: 'dhcp' }),
    });
    server.on('milestone', (m: BootMilestone) => void this.milestone(m));
    this.ports = await server.start();
    this.server = server;
    this.log.info({ mode: b.dhcpMode, address: b.address, ...this.ports }, 'dhcp serving');
  }

  /** Addresses PXE clients asked from (proxyDHCP on 4011): their TFTP fetches are theirs. */
  private readonly recent = new Map<string, string>();

  /** Which MAC an address belongs to: a client seen by proxyDHCP, or a lease racksmith gave. */
  async macFor(ip: string): Promise<string | null> {
    return this.recent.get(ip) ?? (await this.repo.leaseByIp(ip))?.mac ?? null;
  }

  private async milestone(m: BootMilestone): Promise<void> {
    this.answers.inc({ type: m.event });
    if (m.ip && m.ip !== '0.0.0.0') {
      this.recent.delete(m.ip);
      this.recent.set(m.ip, m.mac);
      if (this.recent.size > 4096) this.recent.delete(this.recent.keys().next().value!);
    }
    if (!m.jobId) return;
    const what = m.client === 'ipxe' ? `iPXE script ${m.file}` : `loader ${m.file}`;
    await this.jobs.logToCurrentTask(m.jobId, 'info', `boot: DHCP ${m.event} to ${m.mac} with ${what}`).catch((err: Error) => this.log.warn({ err: err.message }, 'could not log a boot milestone'));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.server?.stop();
    this.server = undefined;
    this.ports = undefined;
  }
}
