import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { pageQuerySchema } from '../../common/pagination';
import { READ_ROLES } from '../../common/roles';
import { Roles } from '../auth/auth.decorators';
import { isoTime, pageSchema } from '../../common/http/schemas';
import { AuditService } from './audit.service';

const auditQuery = pageQuerySchema.extend({
  actor: z.string().max(200).optional().describe('Actor name, e.g. a token name or cli:root'),
  action: z.string().max(100).optional().describe('Exact action, or a prefix like "token.*"'),
  targetType: z.string().max(100).optional(),
  targetId: z.string().max(200).optional(),
  requestId: z.string().max(200).optional(),
  since: isoTime.optional().describe('ISO time, inclusive'),
  until: isoTime.optional().describe('ISO time, exclusive'),
});
class AuditQueryDto extends createZodDto(auditQuery) {}

const auditEvent = z.object({
  id: z.string(),
  at: z.string(),
  source: z.enum(['api', 'cli', 'system']),
  actor: z.object({ name: z.string(), kind: z.string(), id: z.string().nullable(), role: z.string().nullable() }),
  action: z.string(),
  target: z.object({ type: z.string(), id: z.string().nullable() }),
  requestId: z.string().nullable(),
  changes: z.record(z.string(), z.unknown()),
});
class AuditPageDto extends createZodDto(pageSchema(auditEvent)) {}

@ApiTags('audit')
@ApiBearerAuth()
@Controller('audit')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @Roles(...READ_ROLES)
  @ApiOperation({ summary: 'Who changed what, newest first' })
  @ApiOkResponse({ type: AuditPageDto })
  list(@Query() q: AuditQueryDto) {
    const { limit, cursor, ...filter } = q;
    return this.audit.list(filter, limit, cursor);
  }
}
