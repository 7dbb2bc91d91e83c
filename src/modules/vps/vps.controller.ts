import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Patch, Post, Put, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppConfig, type Config } from '../../config/config';
import { VmConsoleService } from './vm-console.service';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { pageQuerySchema } from '../../common/pagination';
import { READ_ROLES } from '../../common/roles';
import { namedParam, UuidParam } from '../../common/http/params';
import { Roles } from '../auth/auth.decorators';
import { SitesService } from '../inventory/sites.service';
import { HypervisorsService } from './hypervisors.service';
import { HYPERVISOR_STATES, IMAGE_NAME, POOL_NAME, ipPoolInput, hypervisorInput, hypervisorUpdate, vmImageInput, vpsInput, vpsRebuildInput } from './vps.schemas';
import { VmImagesService } from './vm-images.service';
import { IpPoolsService } from './ip-pools.service';
import { VpsSync } from './vps-sync.service';
import { VM_ACTIONS, VpsService } from './vps.service';

class HypervisorBody extends createZodDto(hypervisorInput) {}
class HypervisorPatch extends createZodDto(hypervisorUpdate) {}
class VpsBody extends createZodDto(vpsInput) {}
class VpsActionBody extends createZodDto(z.object({ action: z.enum(VM_ACTIONS), force: z.boolean().default(false).describe('stop: pull the plug instead of an ACPI shutdown') }).strict()) {}
class VpsResizeBody extends createZodDto(z.object({ vcpus: z.number().int().min(1).max(256), ramMb: z.number().int().min(256).max(4_194_304), diskGb: z.number().int().min(1).max(65_536) }).strict()) {}
class VmGrantBody extends createZodDto(
  z.object({ customer: z.string().trim().min(1).max(200).optional().describe("The VM's customer (the default)"), ttl: z.number().int().min(60).max(90 * 86400).describe('Seconds the access lasts') }).strict(),
) {}
class VpsRebuildBody extends createZodDto(vpsRebuildInput) {}
class VmImageBody extends createZodDto(vmImageInput) {}
class IpPoolBody extends createZodDto(ipPoolInput) {}
const VM_STATES = ['placed', 'creating', 'running', 'stopped', 'paused', 'rebuilding', 'error', 'missing', 'deleting', 'deleted', 'failed'] as const;
class VpsQuery extends createZodDto(
  pageQuerySchema.extend({ customer: z.string().max(200).optional(), hypervisor: z.uuid().optional(), state: z.enum(VM_STATES).optional(), order: z.string().max(128).optional() }).strict(),
) {}
const imageName = namedParam(IMAGE_NAME, 'name', 'an image name such as debian-12');
class HypervisorQuery extends createZodDto(z.object({ site: z.string().max(64).optional(), state: z.enum(HYPERVISOR_STATES).optional() }).strict()) {}

@ApiTags('vps')
@ApiBearerAuth()
@Controller('hypervisors')
export class HypervisorsController {
  constructor(
    private readonly hypervisors: HypervisorsService,
    private readonly sites: SitesService,
    private readonly sync: VpsSync,
  ) {}

  @Post('sync') @Roles('admin', 'engineer') @HttpCode(200)
  @ApiOperation({ summary: 'Run the VM status sync now on every hypervisor that is not down (it also runs every RACKSMITH_VPS_SYNC_INTERVAL): what changed, unreachable hosts, domains racksmith did not make' })
  syncAll() {
    return this.sync.syncAll();
  }

  @Post(':id/sync') @Roles('admin', 'engineer') @HttpCode(200) @ApiOperation({ summary: 'Run the VM status sync on one hypervisor now' })
  syncOne(@Param('id', UuidParam) id: string) {
    return this.sync.syncOne(id);
  }

  @Get() @Roles(...READ_ROLES) @ApiOperation({ summary: 'Hypervisors with capacity, overcommit, what is used and what is free' })
  async list(@Query() q: HypervisorQuery) {
    return this.hypervisors.list({ siteId: q.site ? (await this.sites.resolve(q.site, 'site')).id : undefined, state: q.state });
  }

  @Get(':id') @Roles(...READ_ROLES) get(@Param('id', UuidParam) id: string) {
    return this.hypervisors.get(id);
  }

  @Post() @Roles('admin', 'engineer') @ApiOperation({ summary: 'Register a hypervisor device: SSH access (key stored encrypted, host key pinned), capacity, overcommit' })
  register(@Body() body: HypervisorBody) {
    return this.hypervisors.register(body);
  }

  @Patch(':id') @Roles('admin', 'engineer') @ApiOperation({ summary: 'State (enabled, draining, down), capacity or overcommit; 409 capacity_in_use below what VMs use' })
  update(@Param('id', UuidParam) id: string, @Body() body: HypervisorPatch) {
    return this.hypervisors.update(id, body);
  }

  @Delete(':id') @Roles('admin', 'engineer') @HttpCode(204) async remove(@Param('id', UuidParam) id: string) {
    await this.hypervisors.remove(id);
  }
}

@ApiTags('vps')
@ApiBearerAuth()
@Controller('vps')
export class VpsController {
  constructor(
    private readonly vps: VpsService,
    private readonly consoles: VmConsoleService,
    @Inject(AppConfig) private readonly config: Config,
  ) {}

  @Post() @Roles('admin', 'engineer', 'billing') @HttpCode(202)
  @ApiOperation({ summary: 'A VM: placed at once (409 no_capacity naming the shortfall), made on its hypervisor by the job in the answer' })
  create(@Body() body: VpsBody) {
    return this.vps.create(body);
  }

  @Get() @Roles(...READ_ROLES, 'billing') @ApiOperation({ summary: 'VMs, newest first; by customer, hypervisor, state or order' })
  list(@Query() q: VpsQuery) {
    return this.vps.list({ customer: q.customer, hypervisorId: q.hypervisor, state: q.state, orderId: q.order }, q.limit, q.cursor);
  }

  @Get(':id') @Roles(...READ_ROLES, 'billing') get(@Param('id', UuidParam) id: string) {
    return this.vps.get(id);
  }

  @Post(':id/actions') @Roles('admin', 'engineer', 'billing') @HttpCode(202) @ApiOperation({ summary: 'start, stop (force: plug pulled), reboot, suspend, resume: 202 with the job; 409 vm_busy or illegal_transition' })
  act(@Param('id', UuidParam) id: string, @Body() body: VpsActionBody) {
    return this.vps.act(id, body.action, body.force);
  }

  @Post(':id/resize') @Roles('admin', 'engineer', 'billing') @HttpCode(202) @ApiOperation({ summary: 'Offline resize of a stopped VM (the disk only grows); the new size is booked on its host at once (409 no_capacity)' })
  resize(@Param('id', UuidParam) id: string, @Body() body: VpsResizeBody) {
    return this.vps.resize(id, body);
  }

  @Post(':id/rebuild') @Roles('admin', 'engineer', 'billing') @HttpCode(202)
  @ApiOperation({ summary: 'Make the VM again from an image (its own or another) with new SSH keys or root password: its disk is replaced, place and size kept' })
  rebuild(@Param('id', UuidParam) id: string, @Body() body: VpsRebuildBody) {
    return this.vps.rebuild(id, body);
  }

  @Post(':id/console-grants') @Roles('admin', 'engineer', 'support', 'billing')
  @ApiOperation({ summary: "Console access for the VM's customer: a time-boxed link to its serial console in the web terminal (the token is in this answer only)" })
  grantConsole(@Param('id', UuidParam) id: string, @Body() body: VmGrantBody, @Req() req: FastifyRequest) {
    return this.consoles.create(id, body, this.config.http.publicUrl ?? `${req.protocol}://${req.host}`);
  }

  @Get(':id/console-grants') @Roles(...READ_ROLES, 'billing') listConsoleGrants(@Param('id', UuidParam) id: string) {
    return this.consoles.list(id);
  }

  @Delete('console-grants/:grantId') @Roles('admin', 'engineer', 'support', 'billing') @ApiOperation({ summary: 'End a VM console grant: its open sessions close' })
  revokeConsoleGrant(@Param('grantId', UuidParam) grantId: string) {
    return this.consoles.revoke(grantId, 'revoked by request');
  }

  @Delete(':id') @Roles('admin', 'engineer', 'billing') @HttpCode(202) @ApiOperation({ summary: 'Undefine the VM, remove its disks, free its capacity: 202 with the job' })
  remove(@Param('id', UuidParam) id: string) {
    return this.vps.remove(id);
  }
}

@ApiTags('vps')
@ApiBearerAuth()
@Controller('vps/images')
export class VmImagesController {
  constructor(private readonly images: VmImagesService) {}

  @Get() @Roles(...READ_ROLES, 'billing') @ApiOperation({ summary: 'Base images VMs are made from, with how many live VMs use each' })
  list() {
    return this.images.list();
  }

  @Get(':name') @Roles(...READ_ROLES, 'billing') get(@Param('name') name: string) {
    return this.images.get(imageName(name));
  }

  @Put(':name') @Roles('admin', 'engineer')
  @ApiOperation({ summary: 'Create or change an image: its qcow2 file in each pool, where hypervisors fetch it (URL + SHA-256), direct kernel boot, minimum disk. 201 when created.' })
  async put(@Param('name') name: string, @Body() body: VmImageBody, @Res({ passthrough: true }) reply: FastifyReply) {
    const { image, created } = await this.images.put(imageName(name), body);
    void reply.status(created ? 201 : 200);
    return image;
  }

  @Delete(':name') @Roles('admin', 'engineer') @HttpCode(204) @ApiOperation({ summary: '409 image_in_use while live VMs were made from it (disable it instead)' })
  async remove(@Param('name') name: string) {
    await this.images.remove(imageName(name));
  }
}

const poolName = namedParam(POOL_NAME, 'name', 'a pool name: lowercase letters, digits, dashes');

@ApiTags('vps')
@ApiBearerAuth()
@Controller('vps/ip-pools')
export class IpPoolsController {
  constructor(private readonly pools: IpPoolsService) {}

  @Get() @Roles(...READ_ROLES) @ApiOperation({ summary: 'Address pools for VMs, with how many addresses are used and free' })
  list() {
    return this.pools.list();
  }

  @Get(':name') @Roles(...READ_ROLES) get(@Param('name') name: string) {
    return this.pools.get(poolName(name));
  }

  @Put(':name') @Roles('admin', 'engineer')
  @ApiOperation({ summary: 'Create or change a pool: subnet, gateway, DNS, the range VMs get addresses from. 409 addresses_in_use when VMs hold addresses the new range leaves out. 201 when created.' })
  async put(@Param('name') name: string, @Body() body: IpPoolBody, @Res({ passthrough: true }) reply: FastifyReply) {
    const { pool, created } = await this.pools.put(poolName(name), body);
    void reply.status(created ? 201 : 200);
    return pool;
  }

  @Delete(':name') @Roles('admin', 'engineer') @HttpCode(204) @ApiOperation({ summary: '409 pool_in_use while a hypervisor or a VM uses it' })
  async remove(@Param('name') name: string) {
    await this.pools.remove(poolName(name));
  }
}
