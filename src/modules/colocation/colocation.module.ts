import { Module } from '@nestjs/common';
import { InventoryModule } from '../inventory/inventory.module';
import { WorkQueueModule } from '../work-queue/work-queue.module';
import { ColocationController, VisitsController } from './colocation.controller';
import { ColocationEventRepository, ColocationItemRepository, VisitBookingRepository } from './colocation.repositories';
import { ColocationService } from './colocation.service';
import { VisitsService } from './visits.service';

@Module({
  imports: [InventoryModule, WorkQueueModule],
  controllers: [ColocationController, VisitsController],
  providers: [ColocationItemRepository, ColocationEventRepository, VisitBookingRepository, ColocationService, VisitsService],
  exports: [ColocationService, VisitsService],
})
export class ColocationModule {}
