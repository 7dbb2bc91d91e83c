import { type DynamicModule, Global, Module } from '@nestjs/common';
import { AppConfig } from './config/config';
import { Database } from './database/database';
import { SecretBox } from './common/secret-box';
import { AuditModule } from './modules/audit/audit.module';
import { AuthModule } from './modules/auth/auth.module';
import { HealthModule } from './modules/health/health.module';
import { MetricsModule } from './modules/metrics/metrics.module';
import { InventoryModule } from './modules/inventory/inventory.module';
import { WorkQueueModule } from './modules/work-queue/work-queue.module';
import { ColocationModule } from './modules/colocation/colocation.module';
import { ServersModule } from './modules/servers/servers.module';
import type { Runtime } from './runtime';
import { DATABASE_URL, LOGGER } from './app.tokens';
import { JobsModule } from './jobs/jobs.module';
import { ScheduleModule } from '@nestjs/schedule';
import { ServerPowerModule } from './modules/power/power.module';
import { ConsoleModule } from './modules/console/console.module';
import { BootModule } from './modules/boot/boot.module';
import { TemplatesModule } from './modules/templates/templates.module';
import { BillingModule } from './modules/billing/billing.module';
import { VpsModule } from './modules/vps/vps.module';
import { ImagesModule } from './modules/images/images.module';
import { CustomersModule } from './modules/customers/customers.module';

@Global()
@Module({})
class CoreModule {
  static register(rt: Runtime): DynamicModule {
    return {
      module: CoreModule,
      providers: [
        { provide: AppConfig, useValue: rt.config },
        { provide: Database, useValue: rt.db },
        { provide: LOGGER, useValue: rt.log },
        { provide: SecretBox, useValue: rt.secrets },
        { provide: DATABASE_URL, useValue: rt.databaseUrl },
      ],
      exports: [AppConfig, Database, LOGGER, SecretBox, DATABASE_URL],
    };
  }
}

@Module({})
export class AppModule {
  static register(rt: Runtime): DynamicModule {
    return {
      module: AppModule,
      imports: [CoreModule.register(rt), JobsModule, MetricsModule, HealthModule, AuditModule, AuthModule, InventoryModule, WorkQueueModule, ColocationModule, ServersModule, ScheduleModule.forRoot(), ServerPowerModule, ConsoleModule, BootModule, TemplatesModule, BillingModule, VpsModule, ImagesModule, CustomersModule],
    };
  }
}
