import { Module } from '@nestjs/common';
import { BmcModule } from '../bmc/bmc.module';
import { AuthModule } from '../auth/auth.module';
import { InventoryModule } from '../inventory/inventory.module';
import { VpsModule } from '../vps/vps.module';
import { WorkQueueModule } from '../work-queue/work-queue.module';
import { ConsoleController } from './console.controller';
import { ConsoleGrantRepository } from './console-grant.repository';
import { ConsoleReconciler } from './console-reconciler.service';
import { ConsoleService } from './console.service';
import { SolRelay } from './sol-relay.service';
import { GrantExpiry } from './grant-expiry';

@Module({
  imports: [BmcModule, WorkQueueModule, AuthModule, InventoryModule, VpsModule],
  controllers: [ConsoleController],
  providers: [ConsoleGrantRepository, ConsoleService, ConsoleReconciler, SolRelay, GrantExpiry],
  exports: [ConsoleService, ConsoleReconciler, SolRelay],
})
export class ConsoleModule {}
