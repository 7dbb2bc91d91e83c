import { Injectable } from '@nestjs/common';
import { DeviceRepository, HardwareModelRepository, PowerConnectionRepository, RackRepository, type PowerUse } from './inventory.repositories';
import type { DeviceEntity, RackEntity } from './inventory.entities';
import { RacksService, rackView, type RackView } from './racks.service';
import { SitesService } from './sites.service';

export interface ElevationDevice {
  id: string;
  name: string;
  role: string;
  model: string;
  customerId: string | null;
  position: number;
  heightU: number;
  face: 'front' | 'rear';
  fullDepth: boolean;
}

export interface UnitSlot {
  deviceId: string;
  name: string;
  role: string;
}

export interface Elevation {
  rack: RackView;
  /** Top unit first, as a rack is drawn. */
  units: { unit: number; front: UnitSlot | null; rear: UnitSlot | null }[];
  devices: ElevationDevice[];
  /** Zero-U devices (vertical PDUs): in the rack, on no unit. */
  zeroU: ElevationDevice[];
  free: { front: number; rear: number; both: number };
}

export interface RackUtilisation {
  rackId: string;
  name: string;
  units: { total: number; usedFront: number; usedRear: number; used: number; free: number };
  power: { budgetW: number | null; allocatedW: number; maxW: number; utilisationPct: number | null };
}

export interface SiteUtilisation {
  siteId: string;
  code: string;
  racks: number;
  units: { total: number; used: number; free: number };
  power: {
    rackBudgetW: number;
    allocatedW: number;
    maxW: number;
    feeds: { id: string; name: string; budgetW: number; allocatedW: number; utilisationPct: number }[];
  };
  perRack: RackUtilisation[];
}

const pct = (part: number, whole: number | null) => (whole ? Math.round((part / whole) * 1000) / 10 : null);

/** Rack elevations (JSON, SVG) and utilisation of racks and sites: read-only views. */
@Injectable()
export class ElevationService {
  constructor(
    private readonly racks: RacksService,
    private readonly rackRows: RackRepository,
    private readonly devices: DeviceRepository,
    private readonly models: HardwareModelRepository,
    private readonly power: PowerConnectionRepository,
    private readonly sites: SitesService,
  ) {}

  async elevation(rackId: string): Promise<Elevation> {
    const rack = await this.racks.find(rackId);
    const devices = await this.devices.inRack(rack.id);
    const models = new Map((await this.models.byIds([...new Set(devices.map((d) => d.modelId))])).map((m) => [m.id, `${m.vendor} ${m.model}`]));
    const toView = (d: DeviceEntity): ElevationDevice => ({
      id: d.id,
      name: d.name,
      role: d.role,
      model: models.get(d.modelId) ?? '',
      customerId: d.customerId,
      position: d.position!,
      heightU: d.heightU,
      face: d.face!,
      fullDepth: d.fullDepth,
    });
    const units = Array.from({ length: rack.heightU }, (_, i) => ({ unit: rack.heightU - i, front: null as UnitSlot | null, rear: null as UnitSlot | null }));
    for (const d of devices) {
      for (let u = d.position!; u < d.position! + d.heightU; u++) {
        const row = units[rack.heightU - u];
        const slot = { deviceId: d.id, name: d.name, role: d.role };
        if (d.fullDepth || d.face === 'front') row.front = slot;
        if (d.fullDepth || d.face === 'rear') row.rear = slot;
      }
    }
    return {
      rack: rackView(rack),
      units,
      devices: devices.filter((d) => d.heightU > 0).map(toView),
      zeroU: devices.filter((d) => d.heightU === 0).map(toView),
      free: {
        front: units.filter((u) => !u.front).length,
        rear: units.filter((u) => !u.rear).length,
        both: units.filter((u) => !u.front && !u.rear).length,
      },
    };
  }

  async rackUtilisation(rackId: string): Promise<RackUtilisation> {
    const rack = await this.racks.find(rackId);
    const [units, power] = await Promise.all([this.devices.unitUsage({ rackId }), this.power.byRack({ rackId })]);
    return utilisationOf(rack, units.get(rack.id), power.get(rack.id));
  }

  async siteUtilisation(siteRef: string): Promise<SiteUtilisation> {
    const site = await this.sites.resolve(siteRef);
    const [racks, units, power, feeds, feedUse] = await Promise.all([
      this.rackRows.bySite(site.id),
      this.devices.unitUsage({ siteId: site.id }),
      this.power.byRack({ siteId: site.id }),
      this.power.feedsOfSite(site.id),
      this.power.byFeed(site.id),
    ]);
    const perRack = racks.map((r) => utilisationOf(r, units.get(r.id), power.get(r.id)));
    const sum = (f: (r: RackUtilisation) => number) => perRack.reduce((a, r) => a + f(r), 0);
    return {
      siteId: site.id,
      code: site.code,
      racks: racks.length,
      units: { total: sum((r) => r.units.total), used: sum((r) => r.units.used), free: sum((r) => r.units.free) },
      power: {
        rackBudgetW: sum((r) => r.power.budgetW ?? 0),
        allocatedW: sum((r) => r.power.allocatedW),
        maxW: sum((r) => r.power.maxW),
        feeds: feeds.map((f) => {
          const allocatedW = feedUse.get(f.id)?.allocatedW ?? 0;
          return { id: f.id, name: f.name, budgetW: f.budgetW, allocatedW, utilisationPct: pct(allocatedW, f.budgetW) ?? 0 };
        }),
      },
      perRack,
    };
  }
}

function utilisationOf(rack: RackEntity, units: { front: number; rear: number; any: number } | undefined, power: PowerUse | undefined): RackUtilisation {
  const used = units?.any ?? 0;
  const allocatedW = power?.allocatedW ?? 0;
  return {
    rackId: rack.id,
    name: rack.name,
    units: { total: rack.heightU, usedFront: units?.front ?? 0, usedRear: units?.rear ?? 0, used, free: rack.heightU - used },
    power: { budgetW: rack.powerBudgetW, allocatedW, maxW: power?.maxW ?? 0, utilisationPct: pct(allocatedW, rack.powerBudgetW) },
  };
}
