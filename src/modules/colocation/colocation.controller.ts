import { Body, Controller, Get, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { pageQuerySchema } from '../../common/pagination';
import { READ_ROLES } from '../../common/roles';
import { UuidParam } from '../../common/http/params';
import { Roles } from '../auth/auth.decorators';
import { ITEM_STATES, VISIT_STATES } from './colocation.entities';
import { announceInput, decisionInput, installInput, receiveInput, removeInput, visitInput } from './colocation.schemas';
import { ColocationService } from './colocation.service';
import { VisitsService } from './visits.service';

class AnnounceBody extends createZodDto(announceInput) {}
class ReceiveBody extends createZodDto(receiveInput) {}
class ItemInstallBody extends createZodDto(installInput) {}
class ItemRemoveBody extends createZodDto(removeInput) {}
class VisitBody extends createZodDto(visitInput) {}
class DecisionBody extends createZodDto(decisionInput) {}
class ItemQuery extends createZodDto(pageQuerySchema.extend({ site: z.string().max(64).optional(), customer: z.string().max(100).optional(), state: z.enum(ITEM_STATES).optional() })) {}
class VisitQuery extends createZodDto(pageQuerySchema.extend({ site: z.string().max(64).optional(), customer: z.string().max(100).optional(), state: z.enum(VISIT_STATES).optional() })) {}

const STAFF = ['admin', 'engineer'] as const;

@ApiTags('colocation')
@ApiBearerAuth()
@Controller('colocation/items')
export class ColocationController {
  constructor(private readonly colo: ColocationService) {}

  @Get() @Roles(...READ_ROLES) list(@Query() q: ItemQuery) {
    return this.colo.list({ site: q.site, customerId: q.customer, state: q.state }, q.limit, q.cursor);
  }
  @Post() @Roles(...STAFF, 'support', 'billing') @ApiOperation({ summary: "Announce a customer's equipment (opens an intake task)" })
  announce(@Body() body: AnnounceBody) {
    return this.colo.announce(body);
  }
  @Get(':id') @Roles(...READ_ROLES) @ApiOperation({ summary: 'An item with its history (who did what, when)' }) get(@Param('id', UuidParam) id: string) {
    return this.colo.get(id);
  }
  @Post(':id/receive') @Roles(...STAFF) receive(@Param('id', UuidParam) id: string, @Body() body: ReceiveBody) {
    return this.colo.receive(id, body);
  }
  @Post(':id/install') @Roles(...STAFF) install(@Param('id', UuidParam) id: string, @Body() body: ItemInstallBody) {
    return this.colo.install(id, body);
  }
  @Post(':id/removal-request') @Roles(...STAFF, 'support', 'billing') @ApiOperation({ summary: 'Ask for the equipment to be taken out (opens a removal task)' })
  requestRemoval(@Param('id', UuidParam) id: string) {
    return this.colo.requestRemoval(id);
  }
  @Post(':id/remove') @Roles(...STAFF) @ApiOperation({ summary: 'Taken out: frees its units and power' }) remove(@Param('id', UuidParam) id: string, @Body() body: ItemRemoveBody) {
    return this.colo.remove(id, body.notes);
  }
}

@ApiTags('colocation')
@ApiBearerAuth()
@Controller('visits')
export class VisitsController {
  constructor(private readonly visits: VisitsService) {}

  @Get() @Roles(...READ_ROLES) list(@Query() q: VisitQuery) {
    return this.visits.list({ site: q.site, customerId: q.customer, state: q.state }, q.limit, q.cursor);
  }
  @Post() @Roles(...STAFF, 'support', 'billing') @ApiOperation({ summary: 'Book a visit within the site\'s visiting hours (opens an approval task)' })
  book(@Body() body: VisitBody) {
    return this.visits.book(body);
  }
  @Get(':id') @Roles(...READ_ROLES) get(@Param('id', UuidParam) id: string) {
    return this.visits.get(id);
  }
  @Post(':id/approve') @Roles(...STAFF) approve(@Param('id', UuidParam) id: string, @Body() body: DecisionBody) {
    return this.visits.decide(id, 'approved', body.note);
  }
  @Post(':id/decline') @Roles(...STAFF) decline(@Param('id', UuidParam) id: string, @Body() body: DecisionBody) {
    return this.visits.decide(id, 'declined', body.note);
  }
}
