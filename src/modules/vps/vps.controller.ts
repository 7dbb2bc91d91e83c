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
import { VpsService } from './vps.service';

class HypervisorBody extends createZodDto(hypervisorInput) {}
class HypervisorPatch extends createZodDto(hypervisorUpdate) {}
class VpsBody extends createZodDto(vpsInput) {}
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

  @Delete(':id') @Roles('admin', 'engineer', 'billing') @HttpCode(202) @ApiOperation({ summary: 'Undefine the VM, remove its disks, free its capacity: 202 with the job' })
  remove(@Param('id', UuidParam) id: string) {
    return this.vps.remove(id);
  }
}
