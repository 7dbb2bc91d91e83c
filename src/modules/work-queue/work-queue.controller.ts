import { Body, Controller, Get, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { pageQuerySchema } from '../../common/pagination';
import { READ_ROLES } from '../../common/roles';
import { UuidParam } from '../../common/http/params';
import { requestContext } from '../../common/request-context';
import { Roles } from '../auth/auth.decorators';
import { SitesService } from '../inventory/sites.service';
import { WORK_STATES } from './work-task.entity';
import { WorkQueueService, workTaskView } from './work-queue.service';

class QueueQuery extends createZodDto(
  pageQuerySchema.extend({
    state: z
      .string()
      .default('open,claimed')
      .transform((v) => v.split(','))
      .pipe(z.array(z.enum(WORK_STATES)).min(1))
      .describe('Comma-separated states; default open,claimed'),
  }),
) {}
class CompleteBody extends createZodDto(z.object({ result: z.string().max(2000).optional() }).strict()) {}

@ApiTags('work queue')
@ApiBearerAuth()
@Controller()
export class WorkQueueController {
  constructor(
    private readonly queue: WorkQueueService,
    private readonly sites: SitesService,
  ) {}

  @Get('sites/:site/work-queue')
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: "A site's tasks for the engineers on shift, oldest first" })
  async list(@Param('site') site: string, @Query() q: QueueQuery) {
    return this.queue.list((await this.sites.resolve(site)).id, q.state, q.limit, q.cursor);
  }

  @Get('work-tasks/:id')
  @Roles(...READ_ROLES)
  async get(@Param('id', UuidParam) id: string) {
    return workTaskView(await this.queue.get(id));
  }

  @Post('work-tasks/:id/claim')
  @Roles('admin', 'engineer')
  @ApiOperation({ summary: 'Take a task (409 naming who has it, if someone does)' })
  claim(@Param('id', UuidParam) id: string) {
    return this.queue.claim(id);
  }

  @Post('work-tasks/:id/complete')
  @Roles('admin', 'engineer')
  @ApiOperation({ summary: 'Finish a task you claimed (admins may finish anyone\'s)' })
  complete(@Param('id', UuidParam) id: string, @Body() body: CompleteBody) {
    return this.queue.complete(id, body.result, requestContext.get()?.actor?.role === 'admin');
  }
}
