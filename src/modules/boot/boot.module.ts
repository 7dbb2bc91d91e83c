import { Module } from '@nestjs/common';
import { InventoryModule } from '../inventory/inventory.module';
import { BootNetworksController } from './boot.controller';
import { BootNetworksService } from './boot-networks.service';
import { BootRepository } from './boot.repository';
import { DhcpService } from './dhcp.service';
import { TftpService } from './tftp.service';

/** Network boot: DHCP/proxyDHCP, TFTP for the first-stage loaders, provisioning networks. */
@Module({
  imports: [InventoryModule],
  controllers: [BootNetworksController],
  providers: [TftpService, DhcpService, BootRepository, BootNetworksService],
  exports: [TftpService, DhcpService],
})
export class BootModule {}
