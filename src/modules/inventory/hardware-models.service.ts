import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';
import { MissingReferenceError, NotFoundError } from '../../common/errors';
import type { Page } from '../../common/pagination';
import { AuditService } from '../audit/audit.service';
import { HardwareModelRepository } from './inventory.repositories';
import type { DiskSpec, HardwareModelEntity } from './inventory.entities';
import type { HardwareModelInput } from './inventory.schemas';

export interface HardwareModelView {
  id: string;
  vendor: string;
  model: string;
  heightU: number;
  fullDepth: boolean;
  maxDrawW: number;
  typicalDrawW: number;
  bmcDriver: string | null;
  cpu: string | null;
  cpuCores: number | null;
  ramGb: number | null;
  disks: DiskSpec[];
}

export function hardwareModelView(m: HardwareModelEntity): HardwareModelView {
  return {
    id: m.id,
    vendor: m.vendor,
    model: m.model,
    heightU: m.heightU,
    fullDepth: m.fullDepth,
    maxDrawW: m.maxDrawW,
    typicalDrawW: m.typicalDrawW,
    bmcDriver: m.bmcDriver,
    cpu: m.cpu,
    cpuCores: m.cpuCores,
    ramGb: m.ramGb,
    disks: m.disks,
  };
}

export function hardwareModelColumns(input: Partial<HardwareModelInput>): Partial<HardwareModelEntity> {
  const out: Partial<HardwareModelEntity> = {};
  for (const key of ['vendor', 'model', 'heightU', 'fullDepth', 'maxDrawW', 'typicalDrawW', 'disks'] as const) {
    if (input[key] !== undefined) (out as Record<string, unknown>)[key] = input[key];
  }
  for (const key of ['bmcDriver', 'cpu', 'cpuCores', 'ramGb'] as const) {
    if (input[key] !== undefined) (out as Record<string, unknown>)[key] = input[key] ?? null;
  }
  return out;
}

@Injectable()
export class HardwareModelsService {
  constructor(
    private readonly models: HardwareModelRepository,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  async find(id: string, field?: string): Promise<HardwareModelEntity> {
    const m = await this.models.findById(id);
    if (!m) throw field ? new MissingReferenceError('hardware model', id, field) : new NotFoundError('hardware model', id);
    return m;
  }

  /** A model racksmith itself needs (reserved rack space), made on first use. */
  async ensure(m: { vendor: string; model: string; heightU: number; fullDepth: boolean; maxDrawW: number; typicalDrawW: number }): Promise<HardwareModelEntity> {
    return this.models.ensure(m);
  }

  async list(limit: number, cursor?: string): Promise<Page<HardwareModelView>> {
    const page = await this.models.page(this.models.query('m'), 'model', limit, cursor);
    return { items: page.items.map(hardwareModelView), nextCursor: page.nextCursor };
  }

  async get(id: string): Promise<HardwareModelView> {
    return hardwareModelView(await this.find(id));
  }

  create(input: HardwareModelInput): Promise<HardwareModelView> {
    return this.db.transaction(async () => {
      const m = await this.models.insert(hardwareModelColumns(input));
      await this.audit.record({ action: 'hardware_model.create', targetType: 'hardware_model', targetId: m.id, changes: input });
      return hardwareModelView(m);
    });
  }

  update(id: string, input: Partial<HardwareModelInput>): Promise<HardwareModelView> {
    return this.db.transaction(async () => {
      await this.find(id);
      const m = (await this.models.update(id, hardwareModelColumns(input)))!;
      await this.audit.record({ action: 'hardware_model.update', targetType: 'hardware_model', targetId: id, changes: input });
      return hardwareModelView(m);
    });
  }

  delete(id: string): Promise<void> {
    return this.db.transaction(async () => {
      const m = await this.find(id);
      await this.models.delete(id);
      await this.audit.record({ action: 'hardware_model.delete', targetType: 'hardware_model', targetId: id, changes: { vendor: m.vendor, model: m.model } });
    });
  }
}
