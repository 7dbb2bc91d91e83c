import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { pageQuerySchema } from '../../common/pagination';
import { READ_ROLES } from '../../common/roles';
import { namedParam, UuidParam } from '../../common/http/params';
import { Roles } from '../auth/auth.decorators';
import { BillingInbox } from './billing-inbox.service';
import { ORDER_STATES } from './billing.repository';
import { planCode, planInput } from './billing.schemas';
import { OrdersService } from './orders.service';
import { OutboxService } from './outbox.service';
import { PlansService } from './plans.service';

class PlanBody extends createZodDto(planInput) {}
class OrderQuery extends createZodDto(pageQuerySchema.extend({ state: z.enum(ORDER_STATES).optional(), customer: z.string().max(200).optional() })) {}
class EventQuery extends createZodDto(pageQuerySchema.extend({ order: z.string().max(128).optional(), state: z.enum(['pending', 'processed', 'ignored', 'failed']).optional() })) {}
class OutboxQuery extends createZodDto(pageQuerySchema.extend({ order: z.string().max(128).optional(), state: z.enum(['pending', 'delivered']).optional() })) {}

const BILLING_READ = [...READ_ROLES, 'billing' as const];
const checkCode = namedParam(planCode, 'code', 'a plan code: letters, digits and . _ -');

@ApiTags('billing')
@ApiBearerAuth()
@Controller('billing')
export class BillingController {
  constructor(
    private readonly plans: PlansService,
    private readonly orders: OrdersService,
    private readonly inbox: BillingInbox,
    private readonly outbox: OutboxService,
  ) {}

  @Get('plans') @Roles(...BILLING_READ) @ApiOperation({ summary: 'Billing plans and what each means here' })
  listPlans() {
    return this.plans.list();
  }

  @Get('plans/:code') @Roles(...BILLING_READ) getPlan(@Param('code') code: string) {
    return this.plans.get(checkCode(code));
  }

  @Put('plans/:code') @Roles('admin', 'engineer')
  @ApiOperation({ summary: 'Create or change a plan: dedicated (hardware model or minimum specs, sites), vps (vCPU, RAM, disk) or colocation (units, power). 201 when created.' })
  async putPlan(@Param('code') code: string, @Body() body: PlanBody, @Res({ passthrough: true }) reply: FastifyReply) {
    const { plan, created } = await this.plans.put(checkCode(code), body);
    void reply.status(created ? 201 : 200);
    return plan;
  }

  @Delete('plans/:code') @Roles('admin', 'engineer') @HttpCode(204) async deletePlan(@Param('code') code: string) {
    await this.plans.remove(checkCode(code));
  }

  @Get('orders') @Roles(...BILLING_READ) @ApiOperation({ summary: 'Orders from the billing system, newest first' })
  listOrders(@Query() q: OrderQuery) {
    return this.orders.list({ state: q.state, customer: q.customer }, q.limit, q.cursor);
  }

  @Get('orders/:id') @Roles(...BILLING_READ) getOrder(@Param('id') id: string) {
    return this.orders.get(id);
  }

  @Get('events') @Roles(...BILLING_READ) @ApiOperation({ summary: 'The webhook inbox, newest first: each event with what processing it did' })
  listEvents(@Query() q: EventQuery) {
    return this.inbox.list({ orderId: q.order, state: q.state }, q.limit, q.cursor);
  }

  @Get('outbox') @Roles(...BILLING_READ) @ApiOperation({ summary: 'Events for the billing system, newest first, with their delivery (passwords are never shown)' })
  listOutbox(@Query() q: OutboxQuery) {
    return this.outbox.list({ orderId: q.order, state: q.state }, q.limit, q.cursor);
  }

  @Get('outbox/:id') @Roles(...BILLING_READ) getOutbox(@Param('id', UuidParam) id: string) {
    return this.outbox.get(id);
  }

  @Post('outbox/:id/replay') @Roles('admin', 'engineer', 'billing') @HttpCode(202) @ApiOperation({ summary: 'Send a message again, delivered or not' })
  replay(@Param('id', UuidParam) id: string) {
    return this.outbox.replay(id);
  }
}
