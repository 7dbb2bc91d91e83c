import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';
import { mapDatabaseError } from '../../database/db-errors';
import { ConflictError, NotFoundError, ValidationError } from '../../common/errors';
import type { Page } from '../../common/pagination';
import { SecretBox } from '../../common/secret-box';
import { AuditService } from '../audit/audit.service';
import { DeviceRepository, NicRepository, type DeviceFilter } from './inventory.repositories';
import type { DeviceEntity, HardwareModelEntity, NicEntity } from './inventory.entities';
import type { DeviceInput, DeviceUpdate } from './inventory.schemas';
import { SitesService } from './sites.service';
import { RacksService } from './racks.service';
import { HardwareModelsService } from './hardware-models.service';

export interface DeviceView {
  id: string;
  siteId: string;
  name: string;
  role: string;
  modelId: string;
  assetTag: string | null;
  serial: string | null;
  customerId: string | null;
  placement: { rackId: string; position: number; face: 'front' | 'rear'; heightU: number; fullDepth: boolean } | null;
  nics: { name: string; mac: string; pxe: boolean; ip: string | null }[];
  bmc: { address: string; port: number | null; driver: string | null; consoleDriver: string | null; username: string | null; passwordSet: boolean; passwordRef: string | null; acceptPrivilegeRisk: boolean } | null;
  notes: string | null;
  createdAt: string;
  updatedAt: string;
}

export function deviceView(d: DeviceEntity, nics: NicEntity[], passwordSet: boolean): DeviceView {
  return {
    id: d.id,
    siteId: d.siteId,
    name: d.name,
    role: d.role,
    modelId: d.modelId,
    assetTag: d.assetTag,
    serial: d.serial,
    customerId: d.customerId,
    placement: d.rackId ? { rackId: d.rackId, position: d.position!, face: d.face!, heightU: d.heightU, fullDepth: d.fullDepth } : null,
    nics: nics.map((n) => ({ name: n.name, mac: n.mac, pxe: n.pxe, ip: n.ip ?? null })),
    bmc: d.bmcAddress ? { address: d.bmcAddress, port: d.bmcPort, driver: d.bmcDriver, consoleDriver: d.bmcConsoleDriver, username: d.bmcUsername, passwordSet, passwordRef: d.bmcPasswordRef, acceptPrivilegeRisk: d.bmcAcceptPrivilegeRisk } : null,
    notes: d.notes,
    createdAt: d.createdAt.toISOString(),
    updatedAt: d.updatedAt.toISOString(),
  };
}

interface DeviceDescription {
  name: string;
  role: string;
  assetTag?: string | null;
  serial?: string | null;
  customerId?: string | null;
  notes?: string | null;
  bmc?: { address: string; port?: number | null; driver?: string | null; consoleDriver?: string | null; username?: string | null; passwordRef?: string | null; acceptPrivilegeRisk?: boolean | null } | null;
}

import { BmcCredentialsRepository } from './bmc-credentials.repository';
import type { BulkBmcInput } from './inventory.schemas';
/**
 * A device row from its description (API body or inventory file); the model gives its shape and,
 * when a BMC is named without a driver, the driver. The BMC password is sealed by the caller.
 */
export function deviceColumns(siteId: string, model: HardwareModelEntity, d: DeviceDescription, placement: { rackId: string; position: number; face: 'front' | 'rear' } | null): Partial<DeviceEntity> {
  return {
    siteId,
    name: d.name,
    role: d.role,
    modelId: model.id,
    assetTag: d.assetTag ?? null,
    serial: d.serial ?? null,
    customerId: d.customerId ?? null,
    rackId: placement?.rackId ?? null,
    position: placement?.position ?? null,
    face: placement?.face ?? null,
    heightU: model.heightU,
    fullDepth: model.fullDepth,
    bmcAddress: d.bmc?.address ?? null,
    bmcPort: d.bmc?.port ?? null,
    bmcDriver: d.bmc ? (d.bmc.driver ?? model.bmcDriver ?? null) : null,
    bmcUsername: d.bmc?.username ?? null,
    bmcPasswordRef: d.bmc?.passwordRef ?? null,
    bmcAcceptPrivilegeRisk: d.bmc?.acceptPrivilegeRisk ?? false,
    bmcConsoleDriver: d.bmc?.consoleDriver ?? null,
    notes: d.notes ?? null,
  };
}

@Injectable()
export class DevicesService {
  constructor(
    private readonly devices: DeviceRepository,
    private readonly nics: NicRepository,
    private readonly sites: SitesService,
    private readonly racks: RacksService,
    private readonly models: HardwareModelsService,
    private readonly secrets: SecretBox,
    private readonly audit: AuditService,
    private readonly db: Database,
    private readonly credentials: BmcCredentialsRepository,
  ) {}

  async find(id: string): Promise<DeviceEntity> {
    const d = await this.devices.findById(id);
    if (!d) throw new NotFoundError('device', id);
    return d;
  }

  private async view(d: DeviceEntity): Promise<DeviceView> {
    const [nics, withPassword] = await Promise.all([this.nics.ofDevices([d.id]), this.devices.withBmcPassword([d.id])]);
    return deviceView(d, nics, withPassword.has(d.id));
  }

  async get(id: string): Promise<DeviceView> {
    return this.view(await this.find(id));
  }

  async list(filter: DeviceFilter & { site?: string }, limit: number, cursor?: string): Promise<Page<DeviceView>> {
    const { site, ...rest } = filter;
    const siteId = site ? (await this.sites.resolve(site, 'site')).id : undefined;
    const page = await this.devices.page(this.devices.filtered({ ...rest, siteId }), 'name', limit, cursor);
    const ids = page.items.map((d) => d.id);
    const [nics, withPassword] = await Promise.all([this.nics.ofDevices(ids), this.devices.withBmcPassword(ids)]);
    return { items: page.items.map((d) => deviceView(d, nics.filter((n) => n.deviceId === d.id), withPassword.has(d.id))), nextCursor: page.nextCursor };
  }

  create(input: DeviceInput): Promise<DeviceView> {
    return this.placementConflicts(input.placement, input.modelId, undefined, () =>
      this.db.transaction(async () => {
        const site = await this.sites.resolve(input.site, 'site');
        const model = await this.models.find(input.modelId, 'modelId');
        if (input.placement) await this.checkRack(input.placement.rack, site.id);
        const placement = input.placement ? { rackId: input.placement.rack, position: input.placement.position, face: input.placement.face } : null;
        const d = await this.devices.insert({
          ...deviceColumns(site.id, model, input, placement),
          bmcPasswordEnc: input.bmc?.password ? this.secrets.seal(input.bmc.password) : null,
        });
        if (input.nics?.length) await this.nics.replace(d.id, input.nics);
        await this.audit.record({ action: 'device.create', targetType: 'device', targetId: d.id, changes: { ...input, site: site.code } });
        return this.view(d);
      }),
    );
  }

  update(id: string, input: DeviceUpdate): Promise<DeviceView> {
    return this.placementConflicts(input.placement, input.modelId, id, () =>
      this.db.transaction(async () => {
        const current = await this.find(id);
        const values: Partial<DeviceEntity> = {};
        if (input.site !== undefined) values.siteId = (await this.sites.resolve(input.site, 'site')).id;
        const siteId = values.siteId ?? current.siteId;
        if (input.modelId !== undefined) {
          const model = await this.models.find(input.modelId, 'modelId');
          Object.assign(values, { modelId: model.id, heightU: model.heightU, fullDepth: model.fullDepth });
        }
        for (const key of ['name', 'role'] as const) if (input[key] !== undefined) values[key] = input[key];
        for (const key of ['assetTag', 'serial', 'customerId', 'notes'] as const) if (input[key] !== undefined) values[key] = input[key] ?? null;
        if (input.placement !== undefined) {
          if (input.placement) await this.checkRack(input.placement.rack, siteId);
          Object.assign(values, { rackId: input.placement?.rack ?? null, position: input.placement?.position ?? null, face: input.placement?.face ?? null });
        } else if (values.siteId && values.siteId !== current.siteId && current.rackId) {
          throw new ValidationError('a racked device moves to another site only with a placement there (or placement: null)', 'placement');
        }
        if ((values.role ?? current.role) === 'colocation' && !(values.customerId !== undefined ? values.customerId : current.customerId)) {
          throw new ValidationError('a colocation device needs its owner (customerId)', 'customerId');
        }
        if (input.bmc === null || (input.bmc && input.bmc.address !== current.bmcAddress)) await this.refuseWithLiveGrants(current, 'its BMC changes');
        if (input.bmc === null) Object.assign(values, { bmcAddress: null, bmcPort: null, bmcDriver: null, bmcUsername: null, bmcPasswordEnc: null, bmcPasswordRef: null, bmcAcceptPrivilegeRisk: false, bmcConsoleDriver: null });
        else if (input.bmc) {
          values.bmcAddress = input.bmc.address;
          if (input.bmc.port !== undefined) values.bmcPort = input.bmc.port ?? null;
          if (input.bmc.driver !== undefined) values.bmcDriver = input.bmc.driver ?? null;
          if (input.bmc.username !== undefined) values.bmcUsername = input.bmc.username ?? null;
          if (input.bmc.consoleDriver !== undefined) values.bmcConsoleDriver = input.bmc.consoleDriver ?? null;
          if (input.bmc.acceptPrivilegeRisk !== undefined) values.bmcAcceptPrivilegeRisk = input.bmc.acceptPrivilegeRisk ?? false;
          // A password of its own and a named credential replace each other.
          if (input.bmc.password !== undefined) Object.assign(values, { bmcPasswordEnc: input.bmc.password ? this.secrets.seal(input.bmc.password) : null, ...(input.bmc.password ? { bmcPasswordRef: null } : {}) });
          if (input.bmc.passwordRef !== undefined) Object.assign(values, { bmcPasswordRef: input.bmc.passwordRef ?? null, ...(input.bmc.passwordRef ? { bmcPasswordEnc: null } : {}) });
        }
        const d = (await this.devices.update(id, values))!;
        if (input.nics !== undefined) await this.nics.replace(id, input.nics);
        await this.audit.record({ action: 'device.update', targetType: 'device', targetId: id, changes: input });
        return this.view(d);
      }),
    );
  }

  delete(id: string): Promise<void> {
    return this.db.transaction(async () => {
      const d = await this.find(id);
      await this.refuseWithLiveGrants(d, 'it is deleted');
      await this.devices.delete(id);
      await this.audit.record({ action: 'device.delete', targetType: 'device', targetId: id, changes: { name: d.name, serial: d.serial } });
    });
  }

  /**
   * A live IPKVM grant is an account on the BMC: racksmith must still reach that BMC to remove
   * it, so the BMC cannot be changed or the device deleted until the grants are revoked.
   */
  private async refuseWithLiveGrants(d: DeviceEntity, change: string): Promise<void> {
    const n = await this.devices.liveConsoleGrants(d.id);
    if (n) throw new ConflictError('console_grants_live', `device ${d.name} has ${n} live IPKVM grant(s) on its BMC: revoke them before ${change}`);
  }

  /** The BMC password in clear, for the drivers (never for the API). */
  /**
   * BMC credentials of many devices in one transaction (an inventory of 200 BMCs in one call):
   * each named by id or by site and name, each with a BMC already; any fault and nothing changes.
   */
  async setBmcCredentials(input: BulkBmcInput): Promise<{ updated: number }> {
    return this.db.transaction(async () => {
      const refs = await this.credentials.names();
      for (const [i, item] of input.devices.entries()) {
        const at = `devices.${i}`;
        let device: DeviceEntity | null;
        if (item.id) device = await this.devices.findById(item.id);
        else device = (await this.devices.findWhere({ siteId: (await this.sites.resolve(item.site!, `${at}.site`)).id, name: item.name! }))[0] ?? null;
        if (!device) throw new ValidationError(`${at}: no device ${item.id ?? `${item.site}/${item.name}`}`, item.id ? `${at}.id` : `${at}.name`);
        if (!device.bmcAddress) throw new ValidationError(`${at}: device ${device.name} has no BMC (give it a bmc.address first)`, `${at}.id`);
        if (item.passwordRef && !refs.has(item.passwordRef)) throw new ValidationError(`${at}: BMC credential ${item.passwordRef} is not set (racksmith secrets set ${item.passwordRef})`, `${at}.passwordRef`);
        const values: Partial<DeviceEntity> = {};
        if (item.username) values.bmcUsername = item.username;
        if (item.password) Object.assign(values, { bmcPasswordEnc: this.secrets.seal(item.password), bmcPasswordRef: null });
        if (item.passwordRef) Object.assign(values, { bmcPasswordRef: item.passwordRef, bmcPasswordEnc: null });
        await this.devices.update(device.id, values);
      }
      await this.audit.record({ action: 'device.bmc-credentials', targetType: 'device', targetId: null, changes: { devices: input.devices.map((d) => ({ id: d.id, site: d.site, name: d.name, username: d.username, passwordSet: !!d.password, passwordRef: d.passwordRef })) } });
      return { updated: input.devices.length };
    });
  }

  async bmcPassword(id: string): Promise<string | null> {
    const sealed = await this.devices.sealedBmcPassword(id);
    return sealed ? this.secrets.open(sealed) : null;
  }

  private async checkRack(rackId: string, siteId: string): Promise<void> {
    const rack = await this.racks.find(rackId, 'placement.rack');
    if (rack.siteId !== siteId) throw new ValidationError(`rack ${rack.name} is in another site than the device`, 'placement.rack');
  }

  /**
   * The database refuses a placement on taken units (exclusion constraint); this adds who holds
   * them to the 409, read after the failed transaction has rolled back.
   */
  private async placementConflicts<T>(placement: DeviceInput['placement'], modelId: string | undefined, selfId: string | undefined, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (mapDatabaseError(err)?.code !== 'rack_units_taken' || !placement) throw err;
      const shape = modelId ? await this.models.find(modelId) : await this.find(selfId!);
      const faces: [number, number] = shape.fullDepth ? [0, 2] : placement.face === 'front' ? [0, 1] : [1, 2];
      const holders = await this.devices.occupants(placement.rack, placement.position, shape.heightU, faces, selfId);
      const top = placement.position + shape.heightU - 1;
      throw new ConflictError(
        'rack_units_taken',
        `U${placement.position}${top > placement.position ? `-U${top}` : ''} ${shape.fullDepth ? '(front and rear)' : `(${placement.face})`} is taken` +
          (holders.length ? ` by ${holders.map((h) => `${h.name} at U${h.position} ${h.fullDepth ? 'front and rear' : h.face}`).join(', ')}` : ''),
        {
          rackId: placement.rack,
          position: placement.position,
          heightU: shape.heightU,
          face: placement.face,
          occupiedBy: holders.map((h) => ({ id: h.id, name: h.name, position: h.position, heightU: h.heightU, face: h.face, fullDepth: h.fullDepth })),
        },
        'placement.position',
      );
    }
  }
}
