import { Module } from '@nestjs/common';
import { InventoryModule } from '../inventory/inventory.module';
import { ServersModule } from '../servers/servers.module';
import { TemplatesModule } from '../templates/templates.module';
import { BootScripts } from './boot-scripts.service';
import { BootNetworksController } from './boot.controller';
import { BootNetworksService } from './boot-networks.service';
import { BootRepository } from './boot.repository';
import { DhcpService } from './dhcp.service';
import { TftpService } from './tftp.service';

/** Network boot: DHCP/proxyDHCP, TFTP for the first-stage loaders, provisioning networks. */
@Module({
  imports: [InventoryModule, ServersModule, TemplatesModule],
  controllers: [BootNetworksController],
  providers: [TftpService, DhcpService, BootRepository, BootNetworksService, BootScripts],
  exports: [TftpService, DhcpService, BootScripts],
})
export class BootModule {}
