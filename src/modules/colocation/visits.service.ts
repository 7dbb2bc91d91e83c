import { Injectable } from '@nestjs/common';
import type { z } from 'zod';
import { Database } from '../../database/database';
import { ConflictError, DomainError, NotFoundError, ValidationError } from '../../common/errors';
import type { Page } from '../../common/pagination';
import { requestContext } from '../../common/request-context';
import { AuditService } from '../audit/audit.service';
import { SitesService, siteView } from '../inventory/sites.service';
import { WorkQueueService } from '../work-queue/work-queue.service';
import { VisitBookingRepository } from './colocation.repositories';
import type { VisitBookingEntity } from './colocation.entities';
import type { visitInput } from './colocation.schemas';

export interface VisitView {
  id: string;
  siteId: string;
  customerId: string;
  startsAt: string;
  endsAt: string;
  visitors: { name: string; document?: string }[];
  purpose: string | null;
  state: string;
  decidedBy: string | null;
  decidedAt: string | null;
  decisionNote: string | null;
  createdBy: string;
}

const view = (v: VisitBookingEntity): VisitView => ({
  id: v.id,
  siteId: v.siteId,
  customerId: v.customerId,
  startsAt: v.startsAt.toISOString(),
  endsAt: v.endsAt.toISOString(),
  visitors: v.visitors,
  purpose: v.purpose,
  state: v.state,
  decidedBy: v.decidedBy,
  decidedAt: v.decidedAt?.toISOString() ?? null,
  decisionNote: v.decisionNote,
  createdBy: v.createdBy,
});

/** Date and time of day of an instant in a time zone: { day: "2026-11-25", time: "09:30:00" }. */
export function localTime(at: Date, timeZone: string): { day: string; time: string } {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' })
      .formatToParts(at)
      .map((p) => [p.type, p.value]),
  );
  return { day: `${parts.year}-${parts.month}-${parts.day}`, time: `${parts.hour}:${parts.minute}:${parts.second}` };
}

const me = () => requestContext.actorName();

/**
 * Visit bookings: a customer's people at a site in a time window the site allows (its visiting
 * hours, in its time zone, within one day), approved or declined by staff.
 */
@Injectable()
export class VisitsService {
  constructor(
    private readonly visits: VisitBookingRepository,
    private readonly sites: SitesService,
    private readonly queue: WorkQueueService,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  private async find(id: string): Promise<VisitBookingEntity> {
    const v = await this.visits.findById(id);
    if (!v) throw new NotFoundError('visit', id);
    return v;
  }

  async get(id: string): Promise<VisitView> {
    return view(await this.find(id));
  }

  async list(filter: { site?: string; customerId?: string; state?: string }, limit: number, cursor?: string): Promise<Page<VisitView>> {
    const qb = this.visits.query('v');
    if (filter.site) qb.andWhere('v.site_id = :siteId', { siteId: (await this.sites.resolve(filter.site, 'site')).id });
    if (filter.customerId) qb.andWhere('v.customer_id = :c', { c: filter.customerId });
    if (filter.state) qb.andWhere('v.state = :s', { s: filter.state });
    const page = await this.visits.page(qb, 'startsAt', limit, cursor);
    return { items: page.items.map(view), nextCursor: page.nextCursor };
  }

  book(input: z.infer<typeof visitInput>, now = new Date()): Promise<VisitView> {
    return this.db.transaction(async () => {
      const site = siteView(await this.sites.resolve(input.site, 'site'));
      if (input.startsAt <= now) throw new ValidationError('a visit is booked for the future', 'startsAt');
      if (input.endsAt <= input.startsAt) throw new ValidationError('endsAt must be after startsAt', 'endsAt');
      const start = localTime(input.startsAt, site.timezone);
      const end = localTime(input.endsAt, site.timezone);
      const { opens, closes } = site.visitHours;
      const window = `${site.name} takes visitors ${opens}–${closes} (${site.timezone})`;
      const requested = `${start.day} ${start.time.slice(0, 5)}–${end.day === start.day ? '' : `${end.day} `}${end.time.slice(0, 5)}`;
      if (start.time < `${opens}:00` || start.time >= `${closes}:00`) {
        throw new DomainError('outside_visit_hours', `${window}; requested ${requested}`, 400, 'startsAt', { opens, closes, timezone: site.timezone });
      }
      if (end.day !== start.day || end.time > `${closes}:00`) {
        throw new DomainError('outside_visit_hours', `${window}, within one day; requested ${requested}`, 400, 'endsAt', { opens, closes, timezone: site.timezone });
      }
      const visit = await this.visits.insert({
        siteId: site.id,
        customerId: input.customerId,
        startsAt: input.startsAt,
        endsAt: input.endsAt,
        visitors: input.visitors,
        purpose: input.purpose ?? null,
        state: 'requested',
        createdBy: me(),
      });
      await this.audit.record({ action: 'visit.book', targetType: 'visit', targetId: visit.id, changes: { ...input, visitors: input.visitors.map((x) => x.name) } });
      await this.queue.open(site.id, 'visit-approval', `Visit of ${input.customerId} on ${requested} (${input.visitors.length} people)`, { type: 'visit', id: visit.id });
      return view(visit);
    });
  }

  decide(id: string, decision: 'approved' | 'declined', note?: string): Promise<VisitView> {
    return this.db.transaction(async () => {
      const visit = await this.visits.decide(id, { state: decision, decidedBy: me(), decidedAt: new Date(), decisionNote: note ?? null });
      if (!visit) {
        const current = await this.find(id);
        throw new ConflictError('illegal_transition', `the visit is ${current.state}; only a requested visit is approved or declined`, { state: current.state });
      }
      await this.audit.record({ action: `visit.${decision === 'approved' ? 'approve' : 'decline'}`, targetType: 'visit', targetId: id, changes: { note } });
      await this.queue.closeFor({ type: 'visit', id }, 'visit-approval', decision);
      return view(visit);
    });
  }
}
