import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { pageQuerySchema } from '../../common/pagination';
import { ROLE_NAMES } from '../../common/roles';
import { isoTime, pageSchema } from '../../common/http/schemas';
import { UuidParam as uuid } from '../../common/http/params';
import { requestContext } from '../../common/request-context';
import { Roles } from './auth.decorators';
import { TokenService } from './token.service';

export const createTokenSchema = z
  .object({
    name: z.string().trim().min(1).max(100).describe('What the token is for, e.g. "billing-prod" or "alice laptop"'),
    role: z.enum(ROLE_NAMES),
    expiresAt: isoTime.optional().describe('ISO time after which the token stops working'),
  })
  .strict();
class CreateTokenDto extends createZodDto(createTokenSchema) {}

const tokenView = z.object({
  id: z.string().uuid(),
  name: z.string(),
  role: z.enum(ROLE_NAMES),
  prefix: z.string().describe('The first characters of the token, to recognise it'),
  createdAt: z.string(),
  createdBy: z.string(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});
class TokenDto extends createZodDto(tokenView) {}
class CreatedTokenDto extends createZodDto(tokenView.extend({ token: z.string().describe('The secret: shown once, never again') })) {}
class TokenPageDto extends createZodDto(pageSchema(tokenView)) {}
class TokenListQuery extends createZodDto(
  pageQuerySchema.extend({ includeRevoked: z.enum(['true', 'false']).default('false').transform((v) => v === 'true') }),
) {}

const whoami = z.object({ name: z.string(), kind: z.string(), role: z.enum(ROLE_NAMES), id: z.string().optional() });
class WhoAmIDto extends createZodDto(whoami) {}

@ApiTags('auth')
@ApiBearerAuth()
@Controller()
export class TokensController {
  constructor(private readonly tokens: TokenService) {}

  @Get('whoami')
  @Roles(...ROLE_NAMES)
  @ApiOperation({ summary: 'The token this request was made with' })
  @ApiOkResponse({ type: WhoAmIDto })
  whoami() {
    return requestContext.get()!.actor!;
  }

  @Post('tokens')
  @Roles('admin')
  @ApiOperation({ summary: 'Create an API token (the secret is in this answer only)' })
  @ApiCreatedResponse({ type: CreatedTokenDto })
  create(@Body() body: CreateTokenDto) {
    return this.tokens.create(body);
  }

  @Get('tokens')
  @Roles('admin')
  @ApiOperation({ summary: 'List API tokens (never their secrets)' })
  @ApiOkResponse({ type: TokenPageDto })
  list(@Query() q: TokenListQuery) {
    return this.tokens.list(q.limit, q.includeRevoked, q.cursor);
  }

  @Get('tokens/:id')
  @Roles('admin')
  @ApiOkResponse({ type: TokenDto })
  get(@Param('id', uuid) id: string) {
    return this.tokens.get(id);
  }

  @Delete('tokens/:id')
  @Roles('admin')
  @HttpCode(200)
  @ApiOperation({ summary: 'Revoke an API token at once' })
  @ApiOkResponse({ type: TokenDto })
  revoke(@Param('id', uuid) id: string) {
    return this.tokens.revoke(id);
  }
}
