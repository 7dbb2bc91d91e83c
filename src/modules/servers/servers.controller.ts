import { Body, Controller, Get, Param, Post, Put, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { pageQuerySchema } from '../../common/pagination';
import { READ_ROLES } from '../../common/roles';
import { UuidParam } from '../../common/http/params';
import { Roles } from '../auth/auth.decorators';
import { LIFECYCLE_STATES } from './lifecycle';
import { ServerLifecycleService } from './server-lifecycle.service';

class ServerQuery extends createZodDto(
  pageQuerySchema.extend({
    site: z.string().max(64).optional(),
    state: z.enum(LIFECYCLE_STATES).optional(),
    maintenance: z.enum(['true', 'false']).transform((v) => v === 'true').optional(),
  }),
) {}
class TransitionBody extends createZodDto(z.object({ to: z.enum(LIFECYCLE_STATES), note: z.string().max(1000).optional() }).strict()) {}
class MaintenanceBody extends createZodDto(z.object({ enabled: z.boolean(), reason: z.string().max(500).optional() }).strict()) {}

@ApiTags('servers')
@ApiBearerAuth()
@Controller('servers')
export class ServersController {
  constructor(private readonly lifecycle: ServerLifecycleService) {}

  @Get() @Roles(...READ_ROLES) @ApiOperation({ summary: 'Rented servers with their lifecycle state' })
  list(@Query() q: ServerQuery) {
    return this.lifecycle.list({ site: q.site, state: q.state, maintenance: q.maintenance }, q.limit, q.cursor);
  }

  @Get(':id') @Roles(...READ_ROLES) get(@Param('id', UuidParam) id: string) {
    return this.lifecycle.get(id);
  }

  @Get(':id/history') @Roles(...READ_ROLES) @ApiOperation({ summary: 'Every change of state, with its cause' })
  history(@Param('id', UuidParam) id: string) {
    return this.lifecycle.history(id);
  }

  @Post(':id/transition') @Roles('admin', 'engineer') @ApiOperation({ summary: 'Move a server by hand (409 naming the current state if the move is not allowed)' })
  transition(@Param('id', UuidParam) id: string, @Body() body: TransitionBody) {
    return this.lifecycle.transition(id, body.to, { type: 'user', note: body.note });
  }

  @Put(':id/maintenance') @Roles('admin', 'engineer') @ApiOperation({ summary: 'Maintenance on: automation leaves the server alone' })
  maintenance(@Param('id', UuidParam) id: string, @Body() body: MaintenanceBody) {
    return this.lifecycle.setMaintenance(id, body.enabled, body.reason);
  }
}
