import { Module } from '@nestjs/common';
import { InventoryModule } from '../inventory/inventory.module';
import { BmcModule } from '../bmc/bmc.module';
import { ImagesModule } from '../images/images.module';
import { ServersController } from './servers.controller';
import { ServerRepository } from './servers.repository';
import { ServerLifecycleService } from './server-lifecycle.service';
import { InstallController } from './install.controller';
import { InstallCallbackRepository } from './install.repository';
import { InstallService } from './install.service';
import { WipeService } from './wipe.service';
import { WorkQueueModule } from '../work-queue/work-queue.module';
import { TemplatesModule } from '../templates/templates.module';
import { BootAgentsModule } from '../boot/boot-agents.module';

@Module({
  imports: [InventoryModule, BmcModule, ImagesModule, WorkQueueModule, TemplatesModule, BootAgentsModule],
  controllers: [ServersController, InstallController],
  providers: [ServerRepository, ServerLifecycleService, InstallCallbackRepository, InstallService, WipeService],
  exports: [ServerLifecycleService, InstallService, WipeService],
})
export class ServersModule {}
