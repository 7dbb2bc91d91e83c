import { Module } from '@nestjs/common';
import { InventoryModule } from '../inventory/inventory.module';
import { HypervisorsService } from './hypervisors.service';
import { PlacementService } from './placement.service';
import { HypervisorsController } from './vps.controller';
import { VpsRepository } from './vps.repository';

@Module({
  imports: [InventoryModule],
  controllers: [HypervisorsController],
  providers: [VpsRepository, HypervisorsService, PlacementService],
  exports: [HypervisorsService, PlacementService],
})
export class VpsModule {}
