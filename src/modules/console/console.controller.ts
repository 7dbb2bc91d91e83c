import { Body, Controller, Delete, Get, Inject, Param, Patch, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { AppConfig, type Config } from '../../config/config';
import { READ_ROLES } from '../../common/roles';
import { UuidParam } from '../../common/http/params';
import { Roles } from '../auth/auth.decorators';
import { ConsoleService } from './console.service';
import { ConsoleReconciler } from './console-reconciler.service';

const ttl = z.number().int().describe('Seconds the grant lasts, from 60 to RACKSMITH_CONSOLE_MAX_TTL');
class GrantBody extends createZodDto(z.object({ customer: z.string().trim().min(1).max(200).describe('Billing customer id'), ttl }).strict()) {}
class ExtendBody extends createZodDto(z.object({ ttl: ttl.describe('New lifetime in seconds, counted from now; the account is kept') }).strict()) {}
class RevokeQuery extends createZodDto(z.object({ reason: z.string().max(500).optional() }).strict()) {}
class GrantQuery extends createZodDto(
  z.object({
    server: z.string().uuid().optional(),
    customer: z.string().max(200).optional(),
    live: z.enum(['true', 'false']).transform((v) => v === 'true').optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
  }),
) {}

@ApiTags('console')
@ApiBearerAuth()
@Controller()
export class ConsoleController {
  constructor(
    private readonly console: ConsoleService,
    private readonly reconciler: ConsoleReconciler,
    @Inject(AppConfig) private readonly config: Config,
  ) {}

  @Post('servers/:id/console-grants') @Roles('admin', 'engineer', 'support')
  @ApiOperation({ summary: 'IPKVM access for a customer: a BMC account (OPERATOR) checked before it is handed out. The password is in this answer only. 409 bmc_privilege_unsafe when the BMC does not enforce privilege limits.' })
  create(@Param('id', UuidParam) id: string, @Body() body: GrantBody, @Req() req: FastifyRequest) {
    return this.console.create(id, body, this.config.http.publicUrl ?? `${req.protocol}://${req.host}`);
  }

  @Get('console-grants') @Roles(...READ_ROLES) @ApiOperation({ summary: 'Grants, newest first' })
  list(@Query() q: GrantQuery) {
    return this.console.list({ serverId: q.server, customer: q.customer, live: q.live }, q.limit);
  }

  @Get('console-grants/:id') @Roles(...READ_ROLES) get(@Param('id', UuidParam) id: string) {
    return this.console.get(id);
  }

  @Patch('console-grants/:id') @Roles('admin', 'engineer', 'support') @ApiOperation({ summary: 'Extend an active grant (same account and password)' })
  extend(@Param('id', UuidParam) id: string, @Body() body: ExtendBody) {
    return this.console.extend(id, body.ttl);
  }

  @Delete('console-grants/:id') @Roles('admin', 'engineer', 'support')
  @ApiOperation({ summary: 'Revoke: the account is disabled, its sessions closed, its slot cleared. state revoke-pending when the BMC did not answer (retried by the reconciler).' })
  revoke(@Param('id', UuidParam) id: string, @Query() q: RevokeQuery) {
    return this.console.revoke(id, q.reason ?? 'revoked by request');
  }

  @Post('console-grants/reconcile') @Roles('admin', 'engineer') @ApiOperation({ summary: 'Run the revocation sweep now' })
  reconcile() {
    return this.reconciler.reconcile();
  }
}
