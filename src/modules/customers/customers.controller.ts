import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { AppConfig, type Config } from '../../config/config';
import { pageQuerySchema } from '../../common/pagination';
import { READ_ROLES } from '../../common/roles';
import { namedParam, UuidParam } from '../../common/http/params';
import { Roles } from '../auth/auth.decorators';
import { CustomersService } from './customers.service';
import { createCustomerTokenInput, customerId, disableCustomerInput, upsertCustomerInput } from './customers.schemas';

class UpsertCustomerBody extends createZodDto(upsertCustomerInput) {}
class DisableBody extends createZodDto(disableCustomerInput) {}
class StaffCustomerTokenBody extends createZodDto(createCustomerTokenInput) {}
class CustomerQuery extends createZodDto(pageQuerySchema.extend({ q: z.string().max(100).optional().describe('Part of the id, name or e-mail') })) {}
class TokenQuery extends createZodDto(z.object({ includeRevoked: z.enum(['true', 'false']).default('false').transform((v) => v === 'true') })) {}

const checkId = namedParam(customerId, 'id', 'a customer id: letters, digits and . _ : @ -, at most 100');
/** Who manages customers: the billing system, and staff who answer them. */
const MANAGE = ['admin', 'billing', 'support'] as const;

@ApiTags('customers')
@ApiBearerAuth()
@Controller('customers')
export class CustomersController {
  constructor(
    private readonly customers: CustomersService,
    @Inject(AppConfig) private readonly config: Config,
  ) {}

  @Put(':id') @Roles('admin', 'billing') @ApiOperation({ summary: 'Create or update a customer (the billing system\'s id); 201 when created' })
  async upsert(@Param('id') id: string, @Body() body: UpsertCustomerBody, @Res({ passthrough: true }) reply: FastifyReply) {
    const { customer, created } = await this.customers.upsert(checkId(id), body);
    if (created) void reply.status(201);
    return customer;
  }

  @Get() @Roles(...READ_ROLES, 'billing') @ApiOperation({ summary: 'Customers by id' })
  list(@Query() q: CustomerQuery) {
    return this.customers.list(q.limit, q.cursor, q.q);
  }

  @Get(':id') @Roles(...READ_ROLES, 'billing') get(@Param('id') id: string) {
    return this.customers.get(checkId(id));
  }

  @Put(':id/disabled') @Roles(...MANAGE) @ApiOperation({ summary: 'Stop (or let again) everything a customer does: every token of theirs is refused while disabled' })
  disable(@Param('id') id: string, @Body() body: DisableBody) {
    return this.customers.setDisabled(checkId(id), body.disabled, body.reason);
  }

  @Get(':id/tokens') @Roles(...READ_ROLES, 'billing') tokens(@Param('id') id: string, @Query() q: TokenQuery) {
    return this.customers.tokens(checkId(id), q.includeRevoked).then((items) => ({ items }));
  }

  @Post(':id/tokens') @Roles(...MANAGE) @ApiOperation({ summary: 'A customer API token (rsc_…), limited to this customer; the secret is in this answer only' })
  createToken(@Param('id') id: string, @Body() body: StaffCustomerTokenBody) {
    return this.customers.createToken(checkId(id), body);
  }

  @Delete(':id/tokens/:tokenId') @Roles(...MANAGE) @ApiOperation({ summary: 'Revoke one of the customer\'s tokens at once' })
  revokeToken(@Param('id') id: string, @Param('tokenId', UuidParam) tokenId: string) {
    return this.customers.revokeToken(checkId(id), tokenId);
  }

  @Post(':id/login-links') @HttpCode(201) @Roles(...MANAGE) @ApiOperation({ summary: 'A one-time login link for the customer panel (the code works once, for RACKSMITH_CUSTOMER_LOGIN_LINK_TTL seconds)' })
  loginLink(@Param('id') id: string, @Req() req: FastifyRequest) {
    return this.customers.createLoginLink(checkId(id), this.config.http.publicUrl ?? `${req.protocol}://${req.host}`);
  }
}
