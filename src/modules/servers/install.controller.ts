import { Body, Controller, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import { UuidParam } from '../../common/http/params';
import { Public, Roles } from '../auth/auth.decorators';
import { z } from 'zod';
import { bulkInstallInput, CALLBACK_STATUSES, callbackInput, installInput, statusCallbackBody, statusCallbackQuery } from './install.schemas';
import { InstallService } from './install.service';
import { WipeService } from './wipe.service';

class InstallBody extends createZodDto(installInput) {}
class WipeBody extends createZodDto(
  z
    .object({
      mode: z.enum(['quick', 'full']).default('quick').describe('quick: the first and last 16 MiB of every disk (tables, RAID/LVM metadata, signatures); full: every byte'),
      queue: z.boolean().default(false).describe('When the server is busy: queue behind its job instead of a 409'),
    })
    .strict(),
) {}
class CallbackBody extends createZodDto(callbackInput) {}
class BulkInstallBody extends createZodDto(bulkInstallInput) {}
class StatusCallbackQuery extends createZodDto(statusCallbackQuery) {}
class StatusCallbackParams extends createZodDto(z.object({ id: z.uuid(), status: z.enum(CALLBACK_STATUSES) }).strict()) {}

@ApiTags('servers')
@Controller()
export class InstallController {
  constructor(
    private readonly install: InstallService,
    private readonly wipe: WipeService,
  ) {}

  @Post('servers/:id/wipe')
  @ApiBearerAuth()
  @Roles('admin', 'engineer')
  @HttpCode(202)
  @ApiOperation({ summary: 'Wipe the server\'s disks by network-booting the wipe image: 202 with the job; the server ends available' })
  wipeDisks(@Param('id', UuidParam) id: string, @Body() body: WipeBody) {
    return this.wipe.request(id, body);
  }

  @Post('servers/:id/install')
  @ApiBearerAuth()
  @Roles('admin', 'engineer')
  @HttpCode(202)
  @ApiOperation({ summary: 'Install an OS on the server: 202 with the job (409 naming the running job if the server is busy)' })
  @ApiAcceptedResponse({ description: 'The install job' })
  request(@Param('id', UuidParam) id: string, @Body() body: InstallBody) {
    return this.install.request(id, body);
  }

  @Post('servers/install')
  @ApiBearerAuth()
  @Roles('admin', 'engineer')
  @HttpCode(202)
  @ApiOperation({ summary: 'The same install on many servers: a job for each one accepted, the reason for each one refused' })
  bulk(@Body() body: BulkInstallBody) {
    return this.install.bulk(body);
  }

  @Post('install-callbacks/:id')
  @Public()
  @HttpCode(202)
  @ApiOperation({ summary: 'The installer reports progress (authenticated by its job\'s callback token)' })
  async callback(@Param('id', UuidParam) id: string, @Body() body: CallbackBody) {
    await this.install.callback(id, body.token, body.status, body.message);
    return { accepted: true };
  }

  @Post('install-callbacks/:id/:status')
  @Public()
  @HttpCode(202)
  @ApiOperation({ summary: 'The installer reports progress, done or failed; the job\'s token in ?token= (single-use for done/failed); a message in the body (JSON or form), optional' })
  async status(@Param() p: StatusCallbackParams, @Query() q: StatusCallbackQuery, @Body() body: unknown) {
    const parsed = statusCallbackBody.safeParse(body);
    const message = parsed.success && typeof parsed.data?.message === 'string' ? parsed.data.message : undefined;
    await this.install.callback(p.id, q.token, p.status, message);
    return { accepted: true };
  }
}
