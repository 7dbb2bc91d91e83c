import { Body, Controller, Delete, Get, HttpCode, Param, Put, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { READ_ROLES } from '../../common/roles';
import { Roles } from '../auth/auth.decorators';
import { BmcCredentialsService } from './bmc-credentials.service';

class CredentialBody extends createZodDto(z.object({ secret: z.string().min(1).max(128).describe('The BMC password; stored encrypted, never shown') }).strict()) {}

@ApiTags('inventory')
@ApiBearerAuth()
@Controller('bmc-credentials')
export class BmcCredentialsController {
  constructor(private readonly credentials: BmcCredentialsService) {}

  @Get() @Roles(...READ_ROLES) @ApiOperation({ summary: 'Named BMC credentials (names and how many BMCs use each; never the secret)' })
  list() {
    return this.credentials.list();
  }

  @Put(':name') @Roles('admin') @ApiOperation({ summary: 'Set a named BMC credential (inventory files name it as bmc.passwordRef); every BMC that names it gets the new secret' })
  async put(@Param('name') name: string, @Body() body: CredentialBody, @Res({ passthrough: true }) reply: FastifyReply) {
    const { created } = await this.credentials.set(name, body.secret);
    void reply.code(created ? 201 : 200);
    return (await this.credentials.list()).find((c) => c.name === name);
  }

  @Delete(':name') @HttpCode(204) @Roles('admin') @ApiOperation({ summary: 'Remove a named BMC credential (409 credential_in_use while a BMC names it)' })
  async remove(@Param('name') name: string) {
    await this.credentials.remove(name);
  }
}
