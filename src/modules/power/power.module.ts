import { Module } from '@nestjs/common';
import { BmcModule } from '../bmc/bmc.module';
import { ServerPowerController } from './power.controller';
import { ServerPowerService } from './server-power.service';
import { PowerSync } from './power-sync.service';

@Module({
  imports: [BmcModule],
  controllers: [ServerPowerController],
  providers: [ServerPowerService, PowerSync],
  exports: [ServerPowerService, PowerSync],
})
export class ServerPowerModule {}
