import { Controller, Get, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Public } from '../auth/auth.decorators';
import { HealthService } from './health.service';

@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get()
  @Public()
  @ApiOperation({ summary: 'Process and database health (no token needed)' })
  @ApiOkResponse({ description: 'Everything critical works' })
  @ApiServiceUnavailableResponse({ description: 'A critical check fails (e.g. the database)' })
  async get(@Res({ passthrough: true }) reply: FastifyReply) {
    const { healthy, body } = await this.health.report();
    reply.status(healthy ? 200 : 503);
    return body;
  }
}
