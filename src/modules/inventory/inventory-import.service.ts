import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';
import { ValidationError } from '../../common/errors';
import { AuditService } from '../audit/audit.service';
import {
  DeviceRepository,
  HardwareModelRepository,
  NicRepository,
  PduRepository,
  PowerConnectionRepository,
  PowerFeedRepository,
  PowerPanelRepository,
  RackRepository,
  SiteRepository,
} from './inventory.repositories';
import type { DeviceEntity, HardwareModelEntity, PduEntity, PowerFeedEntity, PowerPanelEntity, RackEntity, SiteEntity } from './inventory.entities';
import type { DeviceFile, SiteFile } from './inventory-file.schema';
import type { LoadedInventory } from './inventory-files';
import { deviceColumns } from './devices.service';
import { BmcCredentialsRepository } from './bmc-credentials.repository';
import { CREDENTIAL_ENV_PREFIX } from './bmc-credentials.service';

export interface ImportReport {
  dryRun: boolean;
  created: number;
  updated: number;
  unchanged: number;
  /** One line per change: "+ rack baltic/A01", "~ device baltic/srv-1: position 3 → 4". */
  changes: string[];
  /** In the database but not in the files: kept, listed so nothing disappears silently. */
  notInFiles: string[];
}

class DryRun extends Error {}

const show = (v: unknown) => (v === null || v === undefined ? '–' : typeof v === 'object' ? JSON.stringify(v) : String(v));

/** JSON with object keys sorted: jsonb hands keys back in its own order. */
function canonical(v: unknown): string {
  return JSON.stringify(v ?? null, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b))) : x,
  );
}

/** Fields of `desired` that differ from `current`, as "name old → new"; empty when equal. */
function differences(current: Record<string, unknown>, desired: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(desired)) {
    if (canonical(current[k]) !== canonical(v)) out.push(`${k} ${show(current[k])} → ${show(v)}`);
  }
  return out;
}

const hhmmss = (t: string | undefined, fallback: string) => `${(t ?? fallback).slice(0, 5)}:00`;

/**
 * Makes the database hold what the inventory files say, in one transaction: creates what is
 * missing, updates what differs, leaves the rest alone (and says so), deletes nothing.
 * A failure anywhere rolls everything back. Also reads the database back out in file form.
 */
@Injectable()
export class InventoryImportService {
  constructor(
    private readonly db: Database,
    private readonly models: HardwareModelRepository,
    private readonly sites: SiteRepository,
    private readonly racks: RackRepository,
    private readonly panels: PowerPanelRepository,
    private readonly feeds: PowerFeedRepository,
    private readonly pdus: PduRepository,
    private readonly devices: DeviceRepository,
    private readonly nics: NicRepository,
    private readonly connections: PowerConnectionRepository,
    private readonly audit: AuditService,
    private readonly credentials: BmcCredentialsRepository,
  ) {}

  async import(inv: LoadedInventory, opts: { dryRun?: boolean } = {}): Promise<ImportReport> {
    const report: ImportReport = { dryRun: !!opts.dryRun, created: 0, updated: 0, unchanged: 0, changes: [], notInFiles: [] };
    try {
      await this.db.withLock('racksmith:inventory-import', async () => {
        await this.apply(inv, report);
        if (report.created || report.updated) {
          await this.audit.record({
            action: 'inventory.import',
            targetType: 'inventory',
            changes: { files: inv.files.length, created: report.created, updated: report.updated, unchanged: report.unchanged, dryRun: report.dryRun, changes: report.changes.slice(0, 200) },
          });
        }
        if (opts.dryRun) throw new DryRun();
        // After a bulk change the planner's statistics are stale until autovacuum comes by.
        if (report.created + report.updated >= 1000) await this.devices.analyze();
      });
    } catch (err) {
      if (!(err instanceof DryRun)) throw err;
    }
    return report;
  }

  /** Create, update or count as unchanged; the diff line names the thing. */
  private async upsert<E extends { id: string }>(
    report: ImportReport,
    label: string,
    current: E | undefined,
    desired: Record<string, unknown>,
    repo: { insert(v: Partial<E>): Promise<E>; update(id: string, v: Partial<E>): Promise<E | null> },
  ): Promise<E> {
    if (!current) {
      report.created++;
      report.changes.push(`+ ${label}`);
      return repo.insert(desired as Partial<E>);
    }
    const diff = differences(current as Record<string, unknown>, desired);
    if (!diff.length) {
      report.unchanged++;
      return current;
    }
    report.updated++;
    report.changes.push(`~ ${label}: ${diff.join(', ')}`);
    return (await repo.update(current.id, desired as Partial<E>))!;
  }

  private async apply(inv: LoadedInventory, report: ImportReport): Promise<void> {
    // Hardware models.
    const models = new Map((await this.models.all()).map((m) => [`${m.vendor}/${m.model}`, m]));
    for (const m of inv.models) {
      const key = `${m.vendor}/${m.model}`;
      const desired = {
        vendor: m.vendor,
        model: m.model,
        heightU: m.heightU,
        fullDepth: m.fullDepth ?? true,
        maxDrawW: m.maxDrawW ?? 0,
        typicalDrawW: m.typicalDrawW ?? 0,
        bmcDriver: m.bmcDriver ?? null,
        cpu: m.cpu ?? null,
        cpuCores: m.cpuCores ?? null,
        ramGb: m.ramGb ?? null,
        disks: m.disks ?? [],
      };
      models.set(key, await this.upsert(report, `hardware model ${key}`, models.get(key), desired, this.models));
    }

    const existingSites = new Map((await this.sites.all()).map((s) => [s.code, s]));
    for (const s of inv.sites) {
      const site = await this.upsert<SiteEntity>(report, `site ${s.code}`, existingSites.get(s.code), {
        code: s.code,
        name: s.name,
        address: s.address ?? null,
        timezone: s.timezone ?? 'Europe/Moscow',
        visitOpens: hhmmss(s.visitHours?.opens, '09:00'),
        visitCloses: hhmmss(s.visitHours?.closes, '21:00'),
      }, this.sites);
      await this.applySite(site, s, models, report);
    }
    for (const code of existingSites.keys()) if (!inv.sites.some((s) => s.code === code)) report.notInFiles.push(`site ${code}`);
  }

  private async applySite(site: SiteEntity, s: SiteFile, models: Map<string, HardwareModelEntity>, report: ImportReport): Promise<void> {
    const where = (what: string) => `${site.code}/${what}`;

    const racks = new Map((await this.racks.findWhere({ siteId: site.id })).map((r) => [r.name, r]));
    for (const r of s.racks ?? []) {
      const desired = { siteId: site.id, name: r.name, location: r.location ?? null, heightU: r.heightU ?? 42, powerBudgetW: r.powerBudgetW ?? null };
      racks.set(r.name, await this.upsert<RackEntity>(report, `rack ${where(r.name)}`, racks.get(r.name), desired, this.racks));
    }
    const rackId = (name: string, path: string) => {
      const rack = racks.get(name);
      if (!rack) throw new ValidationError(`${path}: rack ${name} is not in site ${site.code}`, path);
      return rack.id;
    };

    // Power: panels → feeds → PDUs (a PDU's device is linked after the devices exist).
    const panels = new Map((await this.panels.findWhere({ siteId: site.id })).map((p) => [p.name, p]));
    const feedRows = await this.feeds.findWhere({ panelId: [...panels.values()].map((p) => p.id) });
    const pduRows = await this.pdus.findWhere({ feedId: feedRows.map((f) => f.id) });
    const pdus = new Map<string, PduEntity>();
    const pduDevices: { pdu: PduEntity; device?: string }[] = [];
    for (const p of s.powerPanels ?? []) {
      const panel = await this.upsert<PowerPanelEntity>(report, `power panel ${where(p.name)}`, panels.get(p.name), { siteId: site.id, name: p.name }, this.panels);
      for (const f of p.feeds ?? []) {
        const desired = {
          panelId: panel.id,
          rackId: f.rack ? rackId(f.rack, `sites.${site.code}.powerPanels.${p.name}.feeds.${f.name}.rack`) : null,
          name: f.name,
          voltage: f.voltage ?? 230,
          amperage: f.amperage,
          phase: f.phase ?? 'single',
          maxUtilizationPct: f.maxUtilizationPct ?? 80,
        };
        const feed = await this.upsert<PowerFeedEntity>(report, `power feed ${where(`${p.name}/${f.name}`)}`, feedRows.find((x) => x.panelId === panel.id && x.name === f.name), desired, this.feeds);
        for (const u of f.pdus ?? []) {
          if (pdus.has(u.name)) throw new ValidationError(`sites.${site.code}: PDU name ${u.name} is used twice; devices refer to PDUs by name`, 'pdus');
          const current = pduRows.find((x) => x.feedId === feed.id && x.name === u.name);
          const pdu = await this.upsert<PduEntity>(report, `pdu ${where(u.name)}`, current, { feedId: feed.id, name: u.name, outlets: u.outlets ?? 24 }, this.pdus);
          pdus.set(u.name, pdu);
          pduDevices.push({ pdu, device: u.device });
        }
      }
    }

    await this.applyDevices(site, s.devices ?? [], racks, models, pdus, report);

    // PDUs that are racked devices, now that the devices exist.
    const deviceIds = new Map((await this.devices.findWhere({ siteId: site.id })).map((d) => [d.name.toLowerCase(), d.id]));
    for (const { pdu, device } of pduDevices) {
      const deviceId = device ? deviceIds.get(device.toLowerCase()) : null;
      if (device && !deviceId) throw new ValidationError(`sites.${site.code}: PDU ${pdu.name} names device ${device}, which is not in the site`, 'pdus.device');
      if ((pdu.deviceId ?? null) !== (deviceId ?? null)) {
        await this.pdus.update(pdu.id, { deviceId: deviceId ?? null });
        report.changes.push(`~ pdu ${where(pdu.name)}: device ${show(pdu.deviceId)} → ${show(device)}`);
      }
    }

    for (const name of racks.keys()) if (!(s.racks ?? []).some((r) => r.name === name)) report.notInFiles.push(`rack ${where(name)}`);
  }

  private async applyDevices(
    site: SiteEntity,
    files: DeviceFile[],
    racks: Map<string, RackEntity>,
    models: Map<string, HardwareModelEntity>,
    pdus: Map<string, PduEntity>,
    report: ImportReport,
  ): Promise<void> {
    const where = (what: string) => `${site.code}/${what}`;
    const existing = new Map((await this.devices.findWhere({ siteId: site.id })).map((d) => [d.name.toLowerCase(), d]));
    const nicRows = await this.nics.ofSite(site.id);
    const nicsOf = new Map<string, { name: string; mac: string; pxe: boolean; ip: string | null }[]>();
    for (const n of nicRows) nicsOf.set(n.deviceId, [...(nicsOf.get(n.deviceId) ?? []), { name: n.name, mac: n.mac, pxe: n.pxe, ip: n.ip ?? null }]);
    const powerOf = new Map<string, { pduId: string; outlet: number | null; allocatedW: number; maxW: number }[]>();
    for (const c of await this.connections.ofSite(site.id)) {
      powerOf.set(c.deviceId, [...(powerOf.get(c.deviceId) ?? []), { pduId: c.pduId, outlet: c.outlet, allocatedW: c.allocatedW, maxW: c.maxW }]);
    }

    const plans: { file: DeviceFile; current?: DeviceEntity; desired: Partial<DeviceEntity>; placementChanged: boolean }[] = [];
    const seen = new Set<string>();
    const credentials = files.some((d) => d.bmc?.passwordRef) ? await this.credentials.names() : new Set<string>();
    for (const [i, d] of files.entries()) {
      const path = `sites.${site.code}.devices[${i}]`;
      const ref = d.bmc?.passwordRef;
      if (ref && !credentials.has(ref)) {
        throw new ValidationError(`${path}: BMC credential ${ref} is not set (racksmith secrets set ${ref}, or ${CREDENTIAL_ENV_PREFIX}${ref.toUpperCase().replace(/-/g, '_')})`, `${path}.bmc.passwordRef`);
      }
      if (seen.has(d.name.toLowerCase())) throw new ValidationError(`${path}: device ${d.name} appears twice`, `${path}.name`);
      seen.add(d.name.toLowerCase());
      const model = models.get(d.model);
      if (!model) throw new ValidationError(`${path}: hardware model ${d.model} is neither in the files nor in the database`, `${path}.model`);
      const rack = d.rack ? racks.get(d.rack) : undefined;
      if (d.rack && !rack) throw new ValidationError(`${path}: rack ${d.rack} is not in site ${site.code}`, `${path}.rack`);
      const current = existing.get(d.name.toLowerCase());
      const desired = deviceColumns(site.id, model, d, rack ? { rackId: rack.id, position: d.position!, face: d.face! } : null);
      const placementChanged = !!current && differences(current as never, { rackId: desired.rackId, position: desired.position, face: desired.face, heightU: desired.heightU, fullDepth: desired.fullDepth }).length > 0;
      plans.push({ file: d, current, desired, placementChanged });
    }

    // Moves first leave their old units, so two devices can swap places within one import.
    for (const p of plans.filter((x) => x.placementChanged && x.current!.rackId)) await this.devices.update(p.current!.id, { rackId: null, position: null, face: null });

    const inserts = plans.filter((p) => !p.current);
    const ids = await this.devices.insertMany(inserts.map((p) => p.desired));
    inserts.forEach((p, i) => {
      p.current = { ...(p.desired as DeviceEntity), id: ids[i] };
      report.created++;
      report.changes.push(`+ device ${where(p.file.name)}`);
    });
    const fresh = new Set(inserts);

    // NICs and power connections: those that change are removed first (a MAC may move between devices).
    const nicChanges: { id: string; nics: { name: string; mac: string; pxe: boolean; ip: string | null }[] }[] = [];
    const powerChanges: { id: string; power: { pduId: string; outlet: number | null; allocatedW: number; maxW: number }[] }[] = [];
    for (const p of plans) {
      const id = p.current!.id;
      const label = `device ${where(p.file.name)}`;
      const diff = fresh.has(p) ? [] : differences(p.current as never, p.desired as never);
      const nics = (p.file.nics ?? []).map((n) => ({ name: n.name, mac: n.mac, pxe: n.pxe ?? false, ip: n.ip ?? null })).sort((a, b) => a.name.localeCompare(b.name));
      const currentNics = (nicsOf.get(id) ?? []).sort((a, b) => a.name.localeCompare(b.name));
      if (JSON.stringify(nics) !== JSON.stringify(currentNics)) {
        nicChanges.push({ id, nics });
        if (!fresh.has(p)) diff.push(`nics ${currentNics.map((n) => `${n.name}=${n.mac}`).join(',') || '–'} → ${nics.map((n) => `${n.name}=${n.mac}`).join(',') || '–'}`);
      }
      const model = [...models.values()].find((m) => m.id === p.desired.modelId)!;
      const power = (p.file.power ?? []).map((c, j) => {
        const pdu = pdus.get(c.pdu);
        if (!pdu) throw new ValidationError(`sites.${site.code}.devices.${p.file.name}.power[${j}]: PDU ${c.pdu} is not in site ${site.code}`, 'power.pdu');
        return { pduId: pdu.id, outlet: c.outlet ?? null, allocatedW: c.allocatedW, maxW: c.maxW ?? model.maxDrawW };
      });
      const key = (x: { pduId: string }) => x.pduId;
      const sortedPower = power.sort((a, b) => key(a).localeCompare(key(b)));
      const currentPower = (powerOf.get(id) ?? []).sort((a, b) => key(a).localeCompare(key(b)));
      if (JSON.stringify(sortedPower) !== JSON.stringify(currentPower)) {
        powerChanges.push({ id, power: sortedPower });
        if (!fresh.has(p)) diff.push(`power ${currentPower.map((c) => `${c.allocatedW}W`).join(',') || '–'} → ${sortedPower.map((c) => `${c.allocatedW}W`).join(',') || '–'}`);
      }
      if (fresh.has(p)) continue;
      if (diff.length) {
        report.updated++;
        report.changes.push(`~ ${label}: ${diff.join(', ')}`);
        await this.devices.update(id, p.desired);
      } else report.unchanged++;
    }
    // New devices have nothing to remove.
    const freshIds = new Set(inserts.map((p) => p.current!.id));
    for (const c of nicChanges) if (!freshIds.has(c.id)) await this.nics.replace(c.id, []);
    const newNics = nicChanges.flatMap((c) => c.nics.map((n) => ({ ...n, deviceId: c.id })));
    if (newNics.length) await this.nics.insertMany(newNics);
    for (const c of powerChanges) {
      if (freshIds.has(c.id)) continue;
      for (const old of await this.connections.findWhere({ deviceId: c.id })) await this.connections.delete(old.id);
    }
    const newPower = powerChanges.flatMap((c) => c.power.map((x) => ({ ...x, deviceId: c.id })));
    if (newPower.length) await this.connections.insertMany(newPower);

    for (const [name, d] of existing) if (!seen.has(name)) report.notInFiles.push(`device ${where(d.name)}`);
  }

  /** The database in file form (what `racksmith inventory export` writes). */
  async export(): Promise<{ models: LoadedInventory['models']; sites: SiteFile[] }> {
    const models = await this.models.all();
    const modelName = new Map(models.map((m) => [m.id, `${m.vendor}/${m.model}`]));
    const sites: SiteFile[] = [];
    for (const site of await this.sites.all()) {
      const racks = await this.racks.bySite(site.id);
      const rackName = new Map(racks.map((r) => [r.id, r.name]));
      const panels = (await this.panels.findWhere({ siteId: site.id })).sort((a, b) => a.name.localeCompare(b.name));
      const feeds = await this.feeds.findWhere({ panelId: panels.map((p) => p.id) });
      const pdus = await this.pdus.findWhere({ feedId: feeds.map((f) => f.id) });
      const pduName = new Map(pdus.map((p) => [p.id, p.name]));
      const devices = (await this.devices.findWhere({ siteId: site.id })).sort((a, b) => a.name.localeCompare(b.name));
      const deviceName = new Map(devices.map((d) => [d.id, d.name]));
      const nics = await this.nics.ofSite(site.id);
      const power = await this.connections.ofSite(site.id);
      const model = new Map(models.map((m) => [m.id, m]));
      sites.push(
        clean({
          code: site.code,
          name: site.name,
          address: site.address,
          timezone: site.timezone,
          visitHours: { opens: site.visitOpens.slice(0, 5), closes: site.visitCloses.slice(0, 5) },
          racks: racks.map((r) => clean({ name: r.name, location: r.location, heightU: r.heightU, powerBudgetW: r.powerBudgetW })),
          powerPanels: panels.map((p) =>
            clean({
              name: p.name,
              feeds: feeds
                .filter((f) => f.panelId === p.id)
                .sort((a, b) => a.name.localeCompare(b.name))
                .map((f) =>
                  clean({
                    name: f.name,
                    rack: f.rackId ? rackName.get(f.rackId) : null,
                    voltage: f.voltage,
                    amperage: f.amperage,
                    phase: f.phase,
                    maxUtilizationPct: f.maxUtilizationPct,
                    pdus: pdus
                      .filter((u) => u.feedId === f.id)
                      .sort((a, b) => a.name.localeCompare(b.name))
                      .map((u) => clean({ name: u.name, outlets: u.outlets, device: u.deviceId ? deviceName.get(u.deviceId) : null })),
                  }),
                ),
            }),
          ),
          devices: devices.map((d) => {
            const defaultDriver = model.get(d.modelId)?.bmcDriver ?? null;
            return clean({
              name: d.name,
              role: d.role,
              model: modelName.get(d.modelId)!,
              assetTag: d.assetTag,
              serial: d.serial,
              customerId: d.customerId,
              rack: d.rackId ? rackName.get(d.rackId) : null,
              position: d.position,
              face: d.face,
              nics: nics.filter((n) => n.deviceId === d.id).map((n) => clean({ name: n.name, mac: n.mac, pxe: n.pxe || null, ip: n.ip ?? null })),
              bmc: d.bmcAddress ? clean({ address: d.bmcAddress, port: d.bmcPort, driver: d.bmcDriver === defaultDriver ? null : d.bmcDriver, consoleDriver: d.bmcConsoleDriver, username: d.bmcUsername, passwordRef: d.bmcPasswordRef, acceptPrivilegeRisk: d.bmcAcceptPrivilegeRisk || null }) : null,
              power: power
                .filter((c) => c.deviceId === d.id)
                .sort((a, b) => a.pduId.localeCompare(b.pduId))
                .map((c) => clean({ pdu: pduName.get(c.pduId)!, outlet: c.outlet, allocatedW: c.allocatedW, maxW: c.maxW })),
              notes: d.notes,
            }) as DeviceFile;
          }),
        }) as SiteFile,
      );
    }
    return {
      models: models.map((m) => clean({ vendor: m.vendor, model: m.model, heightU: m.heightU, fullDepth: m.fullDepth, maxDrawW: m.maxDrawW, typicalDrawW: m.typicalDrawW, bmcDriver: m.bmcDriver, cpu: m.cpu, cpuCores: m.cpuCores, ramGb: m.ramGb, disks: m.disks })) as LoadedInventory['models'],
      sites,
    };
  }
}

/** Drop null and empty-list fields, so exported files stay short. */
function clean<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0))) as T;
}
