import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Logger } from 'pino';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { BootAgents } from './boot-agents.service';
import { BootHttp } from './boot-http.service';
import { DhcpService } from './dhcp.service';
import { TftpService } from './tftp.service';

/**
 * Start network boot in a process of role all (`siteId` null: every site) or agent (its site):
 * nothing when no boot address is configured. The boot listener comes first (DHCP hands out its
 * URL), then TFTP and DHCP; last the process announces that the site boots.
 */
export async function startBootServices(app: NestFastifyApplication, siteId: string | null, opts: { tftp?: boolean; dhcp?: boolean } = {}): Promise<void> {
  const config = app.get<Config>(AppConfig);
  const http = app.get(BootHttp);
  if (!http.enabled) {
    app.get<Logger>(LOGGER).info('boot services off: no boot address configured (RACKSMITH_BOOT_ADDRESS); installs, wipes and orders that network-boot are refused');
    return;
  }
  await http.start(app.getHttpAdapter().getInstance());
  const tftp = app.get(TftpService);
  if (opts.tftp !== false) await tftp.start();
  if (opts.dhcp !== false) await app.get(DhcpService).start();
  await app.get(BootAgents).start({
    siteId,
    address: config.boot.address!,
    httpBase: http.base,
    services: { tftp: tftp.address ? `${tftp.address.address}:${tftp.address.port}` : null, dhcp: opts.dhcp === false ? 'off' : config.boot.dhcpMode },
  });
}
