import { Injectable } from '@nestjs/common';
import type { z } from 'zod';
import { Database } from '../../database/database';
import { MissingReferenceError, NotFoundError, ValidationError } from '../../common/errors';
import { AuditService } from '../audit/audit.service';
import {
  DeviceRepository,
  HardwareModelRepository,
  PduRepository,
  PowerConnectionRepository,
  PowerFeedRepository,
  PowerPanelRepository,
  RackRepository,
} from './inventory.repositories';
import type { PduEntity, PowerConnectionEntity, PowerFeedEntity, PowerPanelEntity } from './inventory.entities';
import type { pduInput, powerConnectionInput, powerFeedInput, powerPanelInput } from './inventory.schemas';
import { SitesService } from './sites.service';

type PanelInput = z.infer<typeof powerPanelInput>;
type FeedInput = z.infer<typeof powerFeedInput>;
type PduInput = z.infer<typeof pduInput>;
type ConnectionInput = z.infer<typeof powerConnectionInput>;

const panelView = (p: PowerPanelEntity) => ({ id: p.id, siteId: p.siteId, name: p.name });
const feedView = (f: PowerFeedEntity) => ({
  id: f.id,
  panelId: f.panelId,
  rackId: f.rackId,
  name: f.name,
  voltage: f.voltage,
  amperage: f.amperage,
  phase: f.phase,
  maxUtilizationPct: f.maxUtilizationPct,
  budgetW: f.budgetW,
});
const pduView = (p: PduEntity) => ({ id: p.id, feedId: p.feedId, deviceId: p.deviceId, name: p.name, outlets: p.outlets });
const connectionView = (c: PowerConnectionEntity) => ({ id: c.id, deviceId: c.deviceId, pduId: c.pduId, outlet: c.outlet, allocatedW: c.allocatedW, maxW: c.maxW });

/**
 * Power panels → feeds → PDUs → connections to devices. The budgets (feed and rack) are checked
 * by the database when a connection is written; a refusal is a 409 with the numbers.
 */
@Injectable()
export class PowerService {
  constructor(
    private readonly panels: PowerPanelRepository,
    private readonly feeds: PowerFeedRepository,
    private readonly pdus: PduRepository,
    private readonly connections: PowerConnectionRepository,
    private readonly devices: DeviceRepository,
    private readonly models: HardwareModelRepository,
    private readonly racks: RackRepository,
    private readonly sites: SitesService,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  private async need<T>(row: Promise<T | null>, what: string, id: string, field?: string): Promise<T> {
    const found = await row;
    if (!found) throw field ? new MissingReferenceError(what, id, field) : new NotFoundError(what, id);
    return found;
  }

  private async recorded<T extends { id: string }>(action: string, targetType: string, fn: () => Promise<T>, changes: Record<string, unknown>): Promise<T> {
    return this.db.transaction(async () => {
      const result = await fn();
      await this.audit.record({ action, targetType, targetId: result.id, changes });
      return result;
    });
  }

  async listPanels(site?: string) {
    const qb = this.panels.query('p').orderBy('p.name');
    if (site) qb.where('p.site_id = :siteId', { siteId: (await this.sites.resolve(site, 'site')).id });
    return (await qb.getMany()).map(panelView);
  }

  createPanel(input: PanelInput) {
    return this.recorded('power_panel.create', 'power_panel', async () => {
      const site = await this.sites.resolve(input.site, 'site');
      return panelView(await this.panels.insert({ siteId: site.id, name: input.name }));
    }, input);
  }

  async listFeeds(filter: { panelId?: string; rackId?: string }) {
    const qb = this.feeds.query('f').orderBy('f.name');
    if (filter.panelId) qb.andWhere('f.panel_id = :panelId', { panelId: filter.panelId });
    if (filter.rackId) qb.andWhere('f.rack_id = :rackId', { rackId: filter.rackId });
    return (await qb.getMany()).map(feedView);
  }

  createFeed(input: FeedInput) {
    return this.recorded('power_feed.create', 'power_feed', async () => {
      const panel = await this.need(this.panels.findById(input.panelId), 'power panel', input.panelId, 'panelId');
      if (input.rackId) {
        const rack = await this.need(this.racks.findById(input.rackId), 'rack', input.rackId, 'rackId');
        if (rack.siteId !== panel.siteId) throw new ValidationError('the rack and the panel are in different sites', 'rackId');
      }
      const { panelId, rackId, ...rest } = input;
      return feedView(await this.feeds.insert({ panelId, rackId: rackId ?? null, ...rest }));
    }, input);
  }

  updateFeed(id: string, input: Partial<Omit<FeedInput, 'panelId'>>) {
    return this.recorded('power_feed.update', 'power_feed', async () => {
      await this.need(this.feeds.findById(id), 'power feed', id);
      const { rackId, ...rest } = input;
      return feedView((await this.feeds.update(id, rackId === undefined ? rest : { ...rest, rackId: rackId ?? null }))!);
    }, input);
  }

  async listPdus(feedId?: string) {
    const qb = this.pdus.query('p').orderBy('p.name');
    if (feedId) qb.where('p.feed_id = :feedId', { feedId });
    return (await qb.getMany()).map(pduView);
  }

  createPdu(input: PduInput) {
    return this.recorded('pdu.create', 'pdu', async () => {
      await this.need(this.feeds.findById(input.feedId), 'power feed', input.feedId, 'feedId');
      if (input.deviceId) {
        const d = await this.need(this.devices.findById(input.deviceId), 'device', input.deviceId, 'deviceId');
        if (d.role !== 'pdu') throw new ValidationError(`device ${d.name} has role ${d.role}, not pdu`, 'deviceId');
      }
      return pduView(await this.pdus.insert({ ...input, deviceId: input.deviceId ?? null }));
    }, input);
  }

  async listConnections(filter: { deviceId?: string; pduId?: string }) {
    const qb = this.connections.query('c').orderBy('c.created_at');
    if (filter.deviceId) qb.andWhere('c.device_id = :deviceId', { deviceId: filter.deviceId });
    if (filter.pduId) qb.andWhere('c.pdu_id = :pduId', { pduId: filter.pduId });
    return (await qb.getMany()).map(connectionView);
  }

  /** Connect a device to a PDU with an allocated draw (409 power_budget_exceeded over budget). */
  connect(input: ConnectionInput) {
    return this.recorded('power_connection.create', 'power_connection', async () => {
      const device = await this.need(this.devices.findById(input.deviceId), 'device', input.deviceId, 'deviceId');
      const pdu = await this.need(this.pdus.findById(input.pduId), 'PDU', input.pduId, 'pduId');
      if (input.outlet && input.outlet > pdu.outlets) throw new ValidationError(`PDU ${pdu.name} has ${pdu.outlets} outlets`, 'outlet');
      const maxW = input.maxW ?? (await this.models.findById(device.modelId))!.maxDrawW;
      if (input.allocatedW > maxW) throw new ValidationError(`allocatedW (${input.allocatedW}) is above the maximum draw (${maxW})`, 'allocatedW');
      return connectionView(await this.connections.insert({ deviceId: device.id, pduId: pdu.id, outlet: input.outlet ?? null, allocatedW: input.allocatedW, maxW }));
    }, input);
  }

  updateConnection(id: string, input: { allocatedW?: number; maxW?: number; outlet?: number | null }) {
    return this.recorded('power_connection.update', 'power_connection', async () => {
      const current = await this.need(this.connections.findById(id), 'power connection', id);
      const allocatedW = input.allocatedW ?? current.allocatedW;
      const maxW = input.maxW ?? current.maxW;
      if (allocatedW > maxW) throw new ValidationError(`allocatedW (${allocatedW}) is above maxW (${maxW})`, 'allocatedW');
      return connectionView((await this.connections.update(id, { allocatedW, maxW, ...(input.outlet !== undefined ? { outlet: input.outlet } : {}) }))!);
    }, input);
  }

  /** Free all power a device holds (equipment leaving the rack). Returns how many connections went. */
  async disconnectDevice(deviceId: string): Promise<number> {
    return this.db.transaction(async () => {
      const conns = await this.connections.findWhere({ deviceId });
      for (const c of conns) await this.connections.delete(c.id);
      if (conns.length) await this.audit.record({ action: 'power_connection.delete', targetType: 'device', targetId: deviceId, changes: { connections: conns.length, freedW: conns.reduce((a, c) => a + c.allocatedW, 0) } });
      return conns.length;
    });
  }

  /** Delete a panel, feed, PDU or connection (409 in_use while something hangs off it). */
  async remove(kind: 'power_panel' | 'power_feed' | 'pdu' | 'power_connection', id: string): Promise<void> {
    const repo = { power_panel: this.panels, power_feed: this.feeds, pdu: this.pdus, power_connection: this.connections }[kind];
    await this.db.transaction(async () => {
      if (!(await repo.delete(id))) throw new NotFoundError(kind.replace('_', ' '), id);
      await this.audit.record({ action: `${kind}.delete`, targetType: kind, targetId: id });
    });
  }
}
