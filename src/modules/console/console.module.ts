import { Module } from '@nestjs/common';
import { BmcModule } from '../bmc/bmc.module';
import { WorkQueueModule } from '../work-queue/work-queue.module';
import { ConsoleController } from './console.controller';
import { ConsoleGrantRepository } from './console-grant.repository';
import { ConsoleReconciler } from './console-reconciler.service';
import { ConsoleService } from './console.service';

@Module({
  imports: [BmcModule, WorkQueueModule],
  controllers: [ConsoleController],
  providers: [ConsoleGrantRepository, ConsoleService, ConsoleReconciler],
  exports: [ConsoleService, ConsoleReconciler],
})
export class ConsoleModule {}
