import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { READ_ROLES } from '../../common/roles';
import { UuidParam } from '../../common/http/params';
import { Roles } from '../auth/auth.decorators';
import { ServerPowerService } from './server-power.service';
import { PowerSync } from './power-sync.service';

export const POWER_ACTIONS = ['on', 'off', 'soft-off', 'cycle', 'reset'] as const;
class PowerActionBody extends createZodDto(z.object({ action: z.enum(POWER_ACTIONS).describe('on of a running server and off of a stopped one change nothing') }).strict()) {}

@ApiTags('power')
@ApiBearerAuth()
@Controller()
export class ServerPowerController {
  constructor(
    private readonly power: ServerPowerService,
    private readonly sync: PowerSync,
  ) {}

  @Get('servers/:id/power') @Roles(...READ_ROLES) @ApiOperation({ summary: 'Last known power state, reachability and drift of the server, with its recent power events' })
  get(@Param('id', UuidParam) id: string) {
    return this.power.get(id);
  }

  @Post('servers/:id/power') @HttpCode(200) @Roles('admin', 'engineer') @ApiOperation({ summary: 'Power action through the BMC (audited); answers with the state read back. 502 when the BMC fails.' })
  act(@Param('id', UuidParam) id: string, @Body() body: PowerActionBody) {
    return this.power.act(id, body.action);
  }

  @Post('power/sync') @HttpCode(200) @Roles('admin', 'engineer') @ApiOperation({ summary: 'Run the power-state sync now over every BMC; answers with counts' })
  syncNow() {
    return this.sync.sync();
  }
}
