import { Body, Controller, Delete, Get, Header, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { pageQuerySchema } from '../../common/pagination';
import { READ_ROLES } from '../../common/roles';
import { UuidParam } from '../../common/http/params';
import { Roles } from '../auth/auth.decorators';
import {
  DEVICE_ROLES,
  deviceInput,
  deviceUpdate,
  hardwareModelFields,
  hardwareModelInput,
  pduInput,
  powerConnectionInput,
  powerFeedInput,
  powerPanelInput,
  rackInput,
  siteInput,
  macAddress,
  bulkBmcInput,
} from './inventory.schemas';
import { SitesService } from './sites.service';
import { RacksService } from './racks.service';
import { HardwareModelsService } from './hardware-models.service';
import { DevicesService } from './devices.service';
import { PowerService } from './power.service';
import { ElevationService } from './elevation.service';
import { renderElevationSvg } from './elevation.svg';

const WRITE = ['admin', 'engineer'] as const;

class SiteBody extends createZodDto(siteInput) {}
class SitePatch extends createZodDto(siteInput.partial().strict()) {}
class RackBody extends createZodDto(rackInput) {}
class RackPatch extends createZodDto(rackInput.omit({ site: true }).partial().strict()) {}
class RackQuery extends createZodDto(pageQuerySchema.extend({ site: z.string().max(64).optional().describe('Site id or code') })) {}
class ModelBody extends createZodDto(hardwareModelInput) {}
class ModelPatch extends createZodDto(hardwareModelFields.partial().strict()) {}
class PageQuery extends createZodDto(pageQuerySchema) {}
class DeviceBody extends createZodDto(deviceInput) {}
class DevicePatch extends createZodDto(deviceUpdate) {}
class DeviceQuery extends createZodDto(
  pageQuerySchema.extend({
    site: z.string().max(64).optional().describe('Site id or code'),
    rack: z.string().uuid().optional(),
    role: z.enum(DEVICE_ROLES).optional(),
    customer: z.string().max(100).optional().describe('Owner (billing customer id)'),
    model: z.string().uuid().optional(),
    serial: z.string().max(100).optional(),
    assetTag: z.string().max(100).optional(),
    mac: macAddress.optional(),
    q: z.string().min(1).max(100).optional().describe('Search name, serial, asset tag, customer, or an exact MAC'),
  }),
) {}
class PanelBody extends createZodDto(powerPanelInput) {}
class PanelQuery extends createZodDto(z.object({ site: z.string().max(64).optional() })) {}
class FeedBody extends createZodDto(powerFeedInput) {}
class FeedPatch extends createZodDto(powerFeedInput.omit({ panelId: true }).partial().strict()) {}
class FeedQuery extends createZodDto(z.object({ panelId: z.string().uuid().optional(), rackId: z.string().uuid().optional() })) {}
class PduBody extends createZodDto(pduInput) {}
class PduQuery extends createZodDto(z.object({ feedId: z.string().uuid().optional() })) {}
class ConnectionBody extends createZodDto(powerConnectionInput) {}
class ConnectionPatch extends createZodDto(
  z.object({ allocatedW: z.number().int().min(0).max(100_000).optional(), maxW: z.number().int().min(0).max(100_000).optional(), outlet: z.number().int().min(1).max(256).nullish() }).strict(),
) {}
class ConnectionQuery extends createZodDto(z.object({ deviceId: z.string().uuid().optional(), pduId: z.string().uuid().optional() })) {}

@ApiTags('inventory')
@ApiBearerAuth()
@Controller('sites')
export class SitesController {
  constructor(
    private readonly sites: SitesService,
    private readonly elevation: ElevationService,
  ) {}

  @Get() @Roles(...READ_ROLES) list() {
    return this.sites.list();
  }
  @Post() @Roles(...WRITE) create(@Body() body: SiteBody) {
    return this.sites.create(body);
  }
  @Get(':site') @Roles(...READ_ROLES) @ApiOperation({ summary: 'A site by id or code' }) get(@Param('site') ref: string) {
    return this.sites.get(ref);
  }
  @Patch(':site') @Roles(...WRITE) update(@Param('site') ref: string, @Body() body: SitePatch) {
    return this.sites.update(ref, body);
  }
  @Delete(':site') @Roles(...WRITE) @HttpCode(204) async delete(@Param('site') ref: string) {
    await this.sites.delete(ref);
  }
  @Get(':site/utilisation') @Roles(...READ_ROLES) @ApiOperation({ summary: 'Units used/free and power allocated/budget, per site and per rack' })
  utilisation(@Param('site') ref: string) {
    return this.elevation.siteUtilisation(ref);
  }
}

@ApiTags('inventory')
@ApiBearerAuth()
@Controller('racks')
export class RacksController {
  constructor(
    private readonly racks: RacksService,
    private readonly elevation: ElevationService,
    private readonly sites: SitesService,
  ) {}

  @Get() @Roles(...READ_ROLES) list(@Query() q: RackQuery) {
    return this.racks.list({ site: q.site }, q.limit, q.cursor);
  }
  @Post() @Roles(...WRITE) create(@Body() body: RackBody) {
    return this.racks.create(body);
  }
  @Get(':id') @Roles(...READ_ROLES) get(@Param('id', UuidParam) id: string) {
    return this.racks.get(id);
  }
  @Patch(':id') @Roles(...WRITE) update(@Param('id', UuidParam) id: string, @Body() body: RackPatch) {
    return this.racks.update(id, body);
  }
  @Delete(':id') @Roles(...WRITE) @HttpCode(204) async delete(@Param('id', UuidParam) id: string) {
    await this.racks.delete(id);
  }
  @Get(':id/elevation') @Roles(...READ_ROLES) @ApiOperation({ summary: 'Rack elevation: every unit, front and rear' })
  elevationJson(@Param('id', UuidParam) id: string) {
    return this.elevation.elevation(id);
  }
  @Get(':id/elevation.svg') @Roles(...READ_ROLES) @Header('Content-Type', 'image/svg+xml; charset=utf-8') @ApiProduces('image/svg+xml')
  @ApiOperation({ summary: 'Rack elevation as an SVG picture' })
  async elevationSvg(@Param('id', UuidParam) id: string) {
    const e = await this.elevation.elevation(id);
    const site = await this.sites.get(e.rack.siteId);
    return renderElevationSvg(e, site.code);
  }
  @Get(':id/utilisation') @Roles(...READ_ROLES) utilisation(@Param('id', UuidParam) id: string) {
    return this.elevation.rackUtilisation(id);
  }
}

@ApiTags('inventory')
@ApiBearerAuth()
@Controller('hardware-models')
export class HardwareModelsController {
  constructor(private readonly models: HardwareModelsService) {}

  @Get() @Roles(...READ_ROLES) list(@Query() q: PageQuery) {
    return this.models.list(q.limit, q.cursor);
  }
  @Post() @Roles(...WRITE) create(@Body() body: ModelBody) {
    return this.models.create(body);
  }
  @Get(':id') @Roles(...READ_ROLES) get(@Param('id', UuidParam) id: string) {
    return this.models.get(id);
  }
  @Patch(':id') @Roles(...WRITE) update(@Param('id', UuidParam) id: string, @Body() body: ModelPatch) {
    return this.models.update(id, body);
  }
  @Delete(':id') @Roles(...WRITE) @HttpCode(204) async delete(@Param('id', UuidParam) id: string) {
    await this.models.delete(id);
  }
}

class BulkBmcBody extends createZodDto(bulkBmcInput) {}

@ApiTags('inventory')
@ApiBearerAuth()
@Controller('devices')
export class DevicesController {
  constructor(private readonly devices: DevicesService) {}

  @Get() @Roles(...READ_ROLES) @ApiOperation({ summary: 'Devices, filtered and searched (by MAC, serial, asset tag, customer)' })
  list(@Query() q: DeviceQuery) {
    const { limit, cursor, rack, customer, model, ...rest } = q;
    return this.devices.list({ ...rest, rackId: rack, customerId: customer, modelId: model }, limit, cursor);
  }
  @Post() @Roles(...WRITE) create(@Body() body: DeviceBody) {
    return this.devices.create(body);
  }
  @Post('bmc') @HttpCode(200) @Roles(...WRITE) @ApiOperation({ summary: 'BMC credentials (username, password or passwordRef) of many devices in one call, all or nothing' })
  bulkBmc(@Body() body: BulkBmcBody) {
    return this.devices.setBmcCredentials(body);
  }
  @Get(':id') @Roles(...READ_ROLES) get(@Param('id', UuidParam) id: string) {
    return this.devices.get(id);
  }
  @Patch(':id') @Roles(...WRITE) @ApiOperation({ summary: 'Change a device; placement: null unracks it; nics replaces all NICs' })
  update(@Param('id', UuidParam) id: string, @Body() body: DevicePatch) {
    return this.devices.update(id, body);
  }
  @Delete(':id') @Roles(...WRITE) @HttpCode(204) async delete(@Param('id', UuidParam) id: string) {
    await this.devices.delete(id);
  }
}

@ApiTags('power')
@ApiBearerAuth()
@Controller()
export class PowerController {
  constructor(private readonly power: PowerService) {}

  @Get('power-panels') @Roles(...READ_ROLES) panels(@Query() q: PanelQuery) {
    return this.power.listPanels(q.site);
  }
  @Post('power-panels') @Roles(...WRITE) createPanel(@Body() body: PanelBody) {
    return this.power.createPanel(body);
  }
  @Delete('power-panels/:id') @Roles(...WRITE) @HttpCode(204) async deletePanel(@Param('id', UuidParam) id: string) {
    await this.power.remove('power_panel', id);
  }
  @Get('power-feeds') @Roles(...READ_ROLES) feeds(@Query() q: FeedQuery) {
    return this.power.listFeeds(q);
  }
  @Post('power-feeds') @Roles(...WRITE) createFeed(@Body() body: FeedBody) {
    return this.power.createFeed(body);
  }
  @Patch('power-feeds/:id') @Roles(...WRITE) updateFeed(@Param('id', UuidParam) id: string, @Body() body: FeedPatch) {
    return this.power.updateFeed(id, body);
  }
  @Delete('power-feeds/:id') @Roles(...WRITE) @HttpCode(204) async deleteFeed(@Param('id', UuidParam) id: string) {
    await this.power.remove('power_feed', id);
  }
  @Get('pdus') @Roles(...READ_ROLES) pdus(@Query() q: PduQuery) {
    return this.power.listPdus(q.feedId);
  }
  @Post('pdus') @Roles(...WRITE) createPdu(@Body() body: PduBody) {
    return this.power.createPdu(body);
  }
  @Delete('pdus/:id') @Roles(...WRITE) @HttpCode(204) async deletePdu(@Param('id', UuidParam) id: string) {
    await this.power.remove('pdu', id);
  }
  @Get('power-connections') @Roles(...READ_ROLES) connections(@Query() q: ConnectionQuery) {
    return this.power.listConnections(q);
  }
  @Post('power-connections') @Roles(...WRITE) @ApiOperation({ summary: 'Connect a device to a PDU with an allocated draw; 409 power_budget_exceeded with the numbers' })
  connect(@Body() body: ConnectionBody) {
    return this.power.connect(body);
  }
  @Patch('power-connections/:id') @Roles(...WRITE) updateConnection(@Param('id', UuidParam) id: string, @Body() body: ConnectionPatch) {
    return this.power.updateConnection(id, body);
  }
  @Delete('power-connections/:id') @Roles(...WRITE) @HttpCode(204) async disconnect(@Param('id', UuidParam) id: string) {
    await this.power.remove('power_connection', id);
  }
}
