import { Module, type OnModuleInit } from '@nestjs/common';
import { InventoryModule } from '../inventory/inventory.module';
import { ServersModule } from '../servers/servers.module';
import { TemplatesModule } from '../templates/templates.module';
import { ImagesModule } from '../images/images.module';
import { BootScripts } from './boot-scripts.service';
import { BootDiscoveryController, BootNetworksController } from './boot.controller';
import { BootNetworksService } from './boot-networks.service';
import { BootRepository } from './boot.repository';
import { DhcpService } from './dhcp.service';
import { TftpService } from './tftp.service';
import { BootHttp } from './boot-http.service';
import { BootAgentsModule } from './boot-agents.module';

/** Network boot: DHCP/proxyDHCP, TFTP for the first-stage loaders, provisioning networks. */
@Module({
  imports: [InventoryModule, ServersModule, TemplatesModule, ImagesModule, BootAgentsModule],
  controllers: [BootNetworksController, BootDiscoveryController],
  providers: [TftpService, DhcpService, BootRepository, BootNetworksService, BootScripts, BootHttp],
  exports: [TftpService, DhcpService, BootScripts, BootHttp, BootAgentsModule],
})
export class BootModule implements OnModuleInit {
  constructor(
    private readonly tftp: TftpService,
    private readonly scripts: BootScripts,
  ) {}

  /** TFTP also serves each machine's iPXE script as racksmith/<mac>.ipxe (for iPXE builds that chain over TFTP). */
  onModuleInit(): void {
    this.tftp.provide(async (name, client) => {
      const m = /^racksmith\/((?:[0-9a-f]{2}[:-]){5}[0-9a-f]{2})\.ipxe$/i.exec(name);
      if (!m) return null;
      const s = await this.scripts.script(m[1]!.toLowerCase().replace(/-/g, ':'), client.address);
      return s.status === 200 ? Buffer.from(s.body) : null;
    });
  }
}
