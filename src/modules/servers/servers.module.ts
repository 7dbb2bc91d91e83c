import { Module } from '@nestjs/common';
import { InventoryModule } from '../inventory/inventory.module';
import { ServersController } from './servers.controller';
import { ServerRepository } from './servers.repository';
import { ServerLifecycleService } from './server-lifecycle.service';

@Module({
  imports: [InventoryModule],
  controllers: [ServersController],
  providers: [ServerRepository, ServerLifecycleService],
  exports: [ServerLifecycleService],
})
export class ServersModule {}
