import { Module } from '@nestjs/common';
import { BmcModule } from '../bmc/bmc.module';
import { ConsoleModule } from '../console/console.module';
import { ColocationModule } from '../colocation/colocation.module';
import { InventoryModule } from '../inventory/inventory.module';
import { ServersModule } from '../servers/servers.module';
import { WorkQueueModule } from '../work-queue/work-queue.module';
import { BillingController } from './billing.controller';
import { BillingInbox } from './billing-inbox.service';
import { BillingProcessor } from './billing-processor.service';
import { BillingRepository } from './billing.repository';
import { OrdersService } from './orders.service';
import { OrderBook } from './order-book.service';
import { ServerOrders } from './server-orders.service';
import { VpsOrders } from './vps-orders.service';
import { ColocationOrders } from './colocation-orders.service';
import { OutboxService } from './outbox.service';
import { PlansService } from './plans.service';
import { VpsModule } from '../vps/vps.module';

@Module({
  imports: [BmcModule, ConsoleModule, ColocationModule, InventoryModule, ServersModule, VpsModule, WorkQueueModule],
  controllers: [BillingController],
  providers: [BillingRepository, PlansService, BillingInbox, OrderBook, ServerOrders, VpsOrders, ColocationOrders, OrdersService, OutboxService, BillingProcessor],
  exports: [BillingInbox, BillingProcessor, PlansService, OrdersService, OutboxService],
})
export class BillingModule {}
