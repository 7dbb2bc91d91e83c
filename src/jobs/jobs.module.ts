import { Global, Inject, Module, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { JobRegistry } from './job-registry';
import { JobRepository } from './job.repository';
import { JobQueue } from './job-queue';
import { JobService } from './job.service';
import { JobsController } from './jobs.controller';
import { JobStreams } from './job-streams.service';
import { InventoryModule } from '../modules/inventory/inventory.module';
import type { Logger } from 'pino';
import { DATABASE_URL, LOGGER } from '../app.tokens';

/** The job engine: kinds (registry), store (repository), wake-up queue, service. Workers run in serve. */
@Global()
@Module({
  imports: [InventoryModule],
  controllers: [JobsController],
  providers: [JobRegistry, JobRepository, JobService, JobStreams, { provide: JobQueue, useFactory: (url: string, log: Logger) => new JobQueue(url, log), inject: [DATABASE_URL, LOGGER] }],
  exports: [JobRegistry, JobRepository, JobService, JobQueue, JobStreams],
})
export class JobsModule implements OnModuleInit, OnModuleDestroy {
  constructor(@Inject(JobQueue) private readonly queue: JobQueue) {}

  async onModuleInit(): Promise<void> {
    await this.queue.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.queue.stop();
  }
}
