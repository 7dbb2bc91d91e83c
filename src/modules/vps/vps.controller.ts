import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { READ_ROLES } from '../../common/roles';
import { UuidParam } from '../../common/http/params';
import { Roles } from '../auth/auth.decorators';
import { SitesService } from '../inventory/sites.service';
import { HypervisorsService } from './hypervisors.service';
import { HYPERVISOR_STATES, hypervisorInput, hypervisorUpdate, vpsInput } from './vps.schemas';
import { VM_ACTIONS, VpsService } from './vps.service';

class HypervisorBody extends createZodDto(hypervisorInput) {}
class HypervisorPatch extends createZodDto(hypervisorUpdate) {}
class VpsBody extends createZodDto(vpsInput) {}
class VpsActionBody extends createZodDto(z.object({ action: z.enum(VM_ACTIONS), force: z.boolean().default(false).describe('stop: pull the plug instead of an ACPI shutdown') }).strict()) {}
class VpsResizeBody extends createZodDto(z.object({ vcpus: z.number().int().min(1).max(256), ramMb: z.number().int().min(256).max(4_194_304), diskGb: z.number().int().min(1).max(65_536) }).strict()) {}
class HypervisorQuery extends createZodDto(z.object({ site: z.string().max(64).optional(), state: z.enum(HYPERVISOR_STATES).optional() }).strict()) {}

@ApiTags('vps')
@ApiBearerAuth()
@Controller('hypervisors')
export class HypervisorsController {
  constructor(
    private readonly hypervisors: HypervisorsService,
    private readonly sites: SitesService,
  ) {}

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
  constructor(private readonly vps: VpsService) {}

  @Post() @Roles('admin', 'engineer', 'billing') @HttpCode(202)
  @ApiOperation({ summary: 'A VM: placed at once (409 no_capacity naming the shortfall), made on its hypervisor by the job in the answer' })
  create(@Body() body: VpsBody) {
    return this.vps.create(body);
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

  @Delete(':id') @Roles('admin', 'engineer', 'billing') @HttpCode(202) @ApiOperation({ summary: 'Undefine the VM, remove its disks, free its capacity: 202 with the job' })
  remove(@Param('id', UuidParam) id: string) {
    return this.vps.remove(id);
  }
}
