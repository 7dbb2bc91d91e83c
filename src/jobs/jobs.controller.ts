import { Controller, Get, Headers, Param, Post, Query, Sse, type MessageEvent } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import type { Observable } from 'rxjs';
import { z } from 'zod';
import { pageQuerySchema } from '../common/pagination';
import { READ_ROLES } from '../common/roles';
import { UuidParam } from '../common/http/params';
import { Roles } from '../modules/auth/auth.decorators';
import { SitesService } from '../modules/inventory/sites.service';
import { JobService } from './job.service';
import { JobStreams } from './job-streams.service';

class JobQuery extends createZodDto(
  pageQuerySchema.extend({
    server: z.string().uuid().optional(),
    state: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']).optional(),
    site: z.string().max(64).optional(),
    kind: z.string().max(64).optional(),
  }),
) {}
class LogQuery extends createZodDto(z.object({ after: z.string().regex(/^\d+$/).optional() })) {}

@ApiTags('jobs')
@ApiBearerAuth()
@Controller('jobs')
export class JobsController {
  constructor(
    private readonly jobs: JobService,
    private readonly sites: SitesService,
    private readonly streams: JobStreams,
  ) {}

  @Get() @Roles(...READ_ROLES) @ApiOperation({ summary: 'Jobs, newest first; filters server, state, site, kind' })
  async list(@Query() q: JobQuery) {
    const siteId = q.site ? (await this.sites.resolve(q.site, 'site')).id : undefined;
    return this.jobs.list({ serverId: q.server, state: q.state, siteId, kind: q.kind }, q.limit, q.cursor);
  }

  @Get(':id') @Roles(...READ_ROLES) @ApiOperation({ summary: 'A job with its tasks (state, attempts, times, error)' })
  get(@Param('id', UuidParam) id: string) {
    return this.jobs.get(id);
  }

  @Get(':id/logs') @Roles(...READ_ROLES) logs(@Param('id', UuidParam) id: string, @Query() q: LogQuery) {
    return this.jobs.logLines(id, q.after);
  }

  @Sse(':id/events') @Roles(...READ_ROLES) @ApiProduces('text/event-stream')
  @ApiOperation({ summary: 'Live progress as Server-Sent Events (task transitions and log lines), ending with the final state' })
  async events(@Param('id', UuidParam) id: string, @Headers('last-event-id') lastEventId?: string): Promise<Observable<MessageEvent>> {
    await this.jobs.get(id); // a 404 before the stream starts
    return this.streams.messages(id, lastEventId);
  }

  @Post(':id/cancel') @Roles('admin', 'engineer') @ApiOperation({ summary: 'Stop the job: queued at once, running after its current task' })
  cancel(@Param('id', UuidParam) id: string) {
    return this.jobs.cancel(id);
  }

  @Post(':id/retry') @Roles('admin', 'engineer') @ApiOperation({ summary: 'Run a failed or cancelled job again from the task that did not finish' })
  retry(@Param('id', UuidParam) id: string) {
    return this.jobs.retry(id);
  }
}
