import { Module } from '@nestjs/common';
import { ServerPowerModule } from '../power/power.module';
import { VpsModule } from '../vps/vps.module';
import { ServersModule } from '../servers/servers.module';
import { CustomerAccountsModule } from './customer-accounts.module';
import { CustomersController } from './customers.controller';
import { MyController } from './my.controller';
import { MyService } from './my.service';
import { TenancyRepository } from './tenancy.repository';

/** The customers' own side: the staff routes that manage customers and the customer routes (/my). */
@Module({
  imports: [CustomerAccountsModule, ServerPowerModule, VpsModule, ServersModule],
  controllers: [CustomersController, MyController],
  providers: [TenancyRepository, MyService],
})
export class CustomersModule {}
