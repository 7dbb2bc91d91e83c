import { Body, Controller, Delete, Get, Headers, HttpCode, Param, Post, Put, Query, Sse, type MessageEvent } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Observable } from 'rxjs';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { UuidParam } from '../../common/http/params';
import { CustomerRoute, Public } from '../auth/auth.decorators';
import { CustomersService } from './customers.service';
import { createCustomerTokenInput, loginInput, reinstallInput, sshKeys } from './customers.schemas';
import { CUSTOMER_POWER_ACTIONS, CUSTOMER_VM_ACTIONS, MyService } from './my.service';

class PowerBody extends createZodDto(
  z.object({ action: z.enum(CUSTOMER_POWER_ACTIONS).describe('on, off (hard), soft-off (ACPI), reset (hard), button (a short press: on when off, soft-off when on)') }).strict(),
) {}
class VmPowerBody extends createZodDto(z.object({ action: z.enum(CUSTOMER_VM_ACTIONS) }).strict()) {}
class SshKeysBody extends createZodDto(z.object({ sshKeys }).strict()) {}
class MyTokenBody extends createZodDto(createCustomerTokenInput) {}
class LoginBody extends createZodDto(loginInput) {}
class ReinstallBody extends createZodDto(reinstallInput) {}
class MyJobLogQuery extends createZodDto(z.object({ after: z.string().regex(/^\d+$/).optional() }).strict()) {}

/**
 * The customer routes: called with a customer's token, they answer for that customer's own
 * servers, VPS, orders and tokens only. Anyone else's is a 404, as an unknown id is.
 */
@ApiTags('my (customers)')
@ApiBearerAuth()
@CustomerRoute()
@Controller('my')
export class MyController {
  constructor(
    private readonly my: MyService,
    private readonly customers: CustomersService,
  ) {}

  @Post('login') @Public() @HttpCode(200) @ApiOperation({ summary: 'Trade a one-time login link\'s code for a session token (rsc_…, RACKSMITH_CUSTOMER_SESSION_TTL); a used or expired code is a 401' })
  login(@Body() body: LoginBody) {
    return this.customers.redeemLoginLink(body.code);
  }

  @Get() @ApiOperation({ summary: 'The customer this token belongs to' })
  profile() {
    return this.my.profile();
  }

  @Put('ssh-keys') @ApiOperation({ summary: 'Replace the customer\'s SSH keys (the default for installs, rescue and the SSH console)' })
  setSshKeys(@Body() body: SshKeysBody) {
    return this.my.setSshKeys(body.sshKeys);
  }

  @Get('servers') @ApiOperation({ summary: 'The customer\'s rented servers with state, power, addresses and the current job' })
  servers() {
    return this.my.servers();
  }

  @Get('servers/:id') server(@Param('id', UuidParam) id: string) {
    return this.my.server(id);
  }

  @Post('servers/:id/power') @HttpCode(200)
  @ApiOperation({ summary: 'Power action on an own active server (audited as customer:<id>); one per RACKSMITH_CUSTOMER_POWER_COOLDOWN seconds per server (409 power_cooldown with Retry-After)' })
  powerServer(@Param('id', UuidParam) id: string, @Body() body: PowerBody) {
    return this.my.powerServer(id, body.action);
  }

  @Post('servers/:id/reinstall') @HttpCode(202)
  @ApiOperation({ summary: "Reinstall an own server with an OS and disk layout its plan allows (400 naming os or diskLayout otherwise); SSH keys default to the customer's; 202 with the job, followed under /my/jobs/{id}" })
  reinstall(@Param('id', UuidParam) id: string, @Body() body: ReinstallBody) {
    return this.my.reinstall(id, body);
  }

  @Get('jobs') @ApiOperation({ summary: "The jobs the customer may follow: their own (reinstall, power) and their orders', newest first" })
  jobs() {
    return this.my.myJobs();
  }

  @Get('jobs/:id') job(@Param('id', UuidParam) id: string) {
    return this.my.job(id);
  }

  @Get('jobs/:id/logs') @ApiOperation({ summary: 'The job log (an install shows its post-install script and its outcome); after= a log id for the next lines' })
  jobLogs(@Param('id', UuidParam) id: string, @Query() q: MyJobLogQuery) {
    return this.my.jobLogs(id, q.after);
  }

  @Sse('jobs/:id/events') @ApiProduces('text/event-stream')
  @ApiOperation({ summary: 'Live progress of an own job as Server-Sent Events (task transitions and log lines), ending with the final state; Last-Event-ID resumes' })
  async jobEvents(@Param('id', UuidParam) id: string, @Headers('last-event-id') lastEventId?: string): Promise<Observable<MessageEvent>> {
    return this.my.jobEvents(id, lastEventId);
  }

  @Get('vps') @ApiOperation({ summary: 'The customer\'s VPS' })
  vms() {
    return this.my.vms();
  }

  @Get('vps/:id') vm(@Param('id', UuidParam) id: string) {
    return this.my.vm(id);
  }

  @Post('vps/:id/power') @HttpCode(202) @ApiOperation({ summary: 'Start, stop or reboot an own VPS: 202 with the job; the same cooldown as servers' })
  powerVm(@Param('id', UuidParam) id: string, @Body() body: VmPowerBody) {
    return this.my.powerVm(id, body.action);
  }

  @Get('orders') @ApiOperation({ summary: 'The customer\'s orders, newest first' })
  orders() {
    return this.my.orders();
  }

  @Get('orders/:orderId') order(@Param('orderId') orderId: string) {
    return this.my.order(orderId);
  }

  @Get('tokens') @ApiOperation({ summary: 'The customer\'s live tokens' })
  tokens() {
    return this.my.tokens();
  }

  @Post('tokens') @ApiOperation({ summary: 'A new token for this customer only (at most 20 live); the secret is in this answer only' })
  createToken(@Body() body: MyTokenBody) {
    return this.my.createToken(body);
  }

  @Delete('tokens/:id') @ApiOperation({ summary: 'Revoke one of the customer\'s own tokens' })
  revokeToken(@Param('id', UuidParam) id: string) {
    return this.my.revokeToken(id);
  }
}
