import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Injectable } from '@nestjs/common';
import { parse as parseYaml } from 'yaml';
import { NotFoundError, ValidationError } from '../../common/errors';
import { Database } from '../../database/database';
import { AuditService } from '../audit/audit.service';
import { BillingRepository, type PlanRow } from './billing.repository';
import { plansFile, type PlanInput } from './billing.schemas';

export interface PlanView {
  code: string;
  kind: PlanRow['kind'];
  description: string | null;
  spec: Record<string, unknown>;
  updatedAt: string;
}

const planView = (p: PlanRow): PlanView => ({ code: p.code, kind: p.kind, description: p.description, spec: p.spec, updatedAt: p.updated_at.toISOString() });
const CACHE_MS = 5000;

/** What each billing plan means here: a dedicated server spec, a VPS size, colocation units and power. */
@Injectable()
export class PlansService {
  /** Plan lookups on the webhook's hot path, cached briefly (a plan changed is seen within 5 s). */
  private cache = new Map<string, { at: number; plan: PlanRow | undefined }>();

  constructor(
    private readonly repo: BillingRepository,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  async find(code: string): Promise<PlanRow | undefined> {
    const hit = this.cache.get(code);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.plan;
    const plan = await this.repo.plan(code);
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(code, { at: Date.now(), plan });
    return plan;
  }

  async list(): Promise<PlanView[]> {
    return (await this.repo.plans()).map(planView);
  }

  async get(code: string): Promise<PlanView> {
    const p = await this.repo.plan(code);
    if (!p) throw new NotFoundError('plan', code);
    return planView(p);
  }

  async put(code: string, input: PlanInput): Promise<{ plan: PlanView; created: boolean }> {
    return this.db.transaction(async () => {
      const { row, created } = await this.repo.upsertPlan({ code, kind: input.kind, spec: input.spec, description: input.description });
      await this.audit.record({ action: created ? 'billing.plan_create' : 'billing.plan_update', targetType: 'plan', targetId: code, changes: input });
      this.cache.delete(code);
      return { plan: planView(row), created };
    });
  }

  async remove(code: string): Promise<void> {
    await this.db.transaction(async () => {
      if (!(await this.repo.deletePlan(code))) throw new NotFoundError('plan', code);
      await this.audit.record({ action: 'billing.plan_delete', targetType: 'plan', targetId: code });
      this.cache.delete(code);
    });
  }

  /** Load a plans file (inventory/plans.yaml): every plan in it is created or updated; none is deleted. */
  async load(file: string, base: string): Promise<number> {
    const path = isAbsolute(file) ? file : resolve(base, file);
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new ValidationError(`cannot read the plans file ${file}: ${(err as Error).message.split('\n')[0]}`, 'RACKSMITH_BILLING_PLANS');
    }
    const parsed = plansFile.safeParse(doc);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new ValidationError(`${file}: ${i.path.join('.')}: ${i.message}`, 'RACKSMITH_BILLING_PLANS');
    }
    await this.db.transaction(async () => {
      for (const { code, ...plan } of parsed.data.plans) await this.repo.upsertPlan({ code, kind: plan.kind, spec: plan.spec, description: plan.description });
    });
    this.cache.clear();
    return parsed.data.plans.length;
  }
}
