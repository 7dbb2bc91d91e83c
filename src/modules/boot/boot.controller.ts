import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { READ_ROLES } from '../../common/roles';
import { UuidParam } from '../../common/http/params';
import { Roles } from '../auth/auth.decorators';
import { BootNetworksService } from './boot-networks.service';
import { bootNetworkInput } from './boot.schemas';
import { BootRepository } from './boot.repository';

class BootNetworkBody extends createZodDto(bootNetworkInput) {}
class BootNetworkQuery extends createZodDto(z.object({ site: z.string().min(1).max(64).optional() }).strict()) {}

@ApiTags('boot')
@ApiBearerAuth()
@Controller('boot')
export class BootDiscoveryController {
  constructor(private readonly repo: BootRepository) {}

  @Get('discovered') @Roles(...READ_ROLES) @ApiOperation({ summary: 'Unknown MACs that asked to network-boot (RACKSMITH_BOOT_DISCOVERY), not yet in the inventory' })
  async discovered() {
    return (await this.repo.discoveries()).map((d) => ({ mac: d.mac, firstSeen: d.first_seen, lastSeen: d.last_seen, requests: d.requests, arch: d.arch, vendorClass: d.vendor_class }));
  }
}

@ApiTags('boot')
@ApiBearerAuth()
@Controller('boot-networks')
export class BootNetworksController {
  constructor(private readonly networks: BootNetworksService) {}

  @Get() @Roles(...READ_ROLES) @ApiOperation({ summary: 'Provisioning networks racksmith\'s DHCP answers for (authoritative mode)' })
  list(@Query() q: BootNetworkQuery) {
    return this.networks.list(q.site);
  }

  @Get(':id') @Roles(...READ_ROLES) @ApiOperation({ summary: 'One provisioning network with its DHCP leases' })
  get(@Param('id', UuidParam) id: string) {
    return this.networks.get(id);
  }

  @Post() @Roles('admin', 'engineer') @ApiOperation({ summary: 'Add a provisioning network (no overlap with another; servers reserve addresses in it through their NICs\' ip)' })
  create(@Body() body: BootNetworkBody) {
    return this.networks.create(body);
  }

  @Delete(':id') @HttpCode(204) @Roles('admin', 'engineer') @ApiOperation({ summary: 'Remove a provisioning network and its leases' })
  remove(@Param('id', UuidParam) id: string) {
    return this.networks.delete(id);
  }
}
