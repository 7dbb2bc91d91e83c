import { Module } from '@nestjs/common';
import { InventoryModule } from '../inventory/inventory.module';
import { WorkQueueController } from './work-queue.controller';
import { WorkQueueService } from './work-queue.service';
import { WorkTaskRepository } from './work-task.repository';

@Module({
  imports: [InventoryModule],
  controllers: [WorkQueueController],
  providers: [WorkTaskRepository, WorkQueueService],
  exports: [WorkQueueService],
})
export class WorkQueueModule {}
