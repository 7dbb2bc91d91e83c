import { z } from 'zod';
import { BMC_DRIVERS, DEVICE_ROLES, FACES, hardwareModelFields, hasPort, macAddress, siteCode, timeOfDay, timeZone } from './inventory.schemas';

/**
 * The inventory as files (inventory/*.yaml): hardware models and sites, each site with its racks,
 * power (panels → feeds → PDUs) and devices. References are by name: a device's model as
 * "Vendor/Model", its rack and its PDUs by name within the site. inventory/schema.json is
 * generated from this (npm run inventory:schema).
 */

const name = (max = 100) => z.string().min(1).max(max);

export const rackFile = z
  .object({
    name: name(),
    location: z.string().max(200).optional(),
    heightU: z.number().int().min(1).max(60).optional().describe('Default 42'),
    powerBudgetW: z.number().int().min(0).max(1_000_000).optional(),
  })
  .strict();

export const pduFile = z
  .object({
    name: name(),
    outlets: z.number().int().min(1).max(256).optional().describe('Default 24'),
    device: name(200).optional().describe('The PDU as a device of this site (role pdu), when racked'),
  })
  .strict();

export const feedFile = z
  .object({
    name: name(),
    rack: name().optional().describe('The rack this feed serves'),
    voltage: z.number().int().min(1).max(1000).optional().describe('Default 230'),
    amperage: z.number().int().min(1).max(1000),
    phase: z.enum(['single', 'three']).optional(),
    maxUtilizationPct: z.number().int().min(1).max(100).optional().describe('Default 80'),
    pdus: z.array(pduFile).optional(),
  })
  .strict();

export const panelFile = z.object({ name: name(), feeds: z.array(feedFile).optional() }).strict();

export const deviceFile = z
  .object({
    name: name(200),
    role: z.enum(DEVICE_ROLES),
    model: z.string().regex(/^[^/]+\/.+$/, 'expected "Vendor/Model"').describe('"Vendor/Model", as in hardwareModels'),
    assetTag: name().optional(),
    serial: name().optional(),
    customerId: name().optional(),
    rack: name().optional(),
    position: z.number().int().min(1).max(60).optional(),
    face: z.enum(FACES).optional(),
    nics: z.array(z.object({ name: name(50), mac: macAddress, pxe: z.boolean().optional(), ip: z.ipv4().optional() }).strict()).optional(),
    bmc: z
      .object({
        address: name(255),
        port: z.number().int().min(1).max(65535).optional(),
        driver: z.enum(BMC_DRIVERS).optional(),
        consoleDriver: z.enum(BMC_DRIVERS).optional(),
        username: name(64).optional(),
        passwordRef: z.string().regex(/^[a-z0-9][a-z0-9.-]{0,62}$/).optional().describe('A named credential: `racksmith secrets set NAME` or RACKSMITH_CREDENTIAL_<NAME>'),
        acceptPrivilegeRisk: z.boolean().optional(),
      })
      .strict()
      .optional()
      .describe('BMC passwords are never kept in files: name a credential (passwordRef), or set them through the API'),
    power: z.array(z.object({ pdu: name(), outlet: z.number().int().min(1).max(256).optional(), allocatedW: z.number().int().min(0), maxW: z.number().int().min(0).optional() }).strict()).optional(),
    notes: z.string().max(2000).optional(),
  })
  .strict()
  .superRefine((d, ctx) => {
    const placed = [d.rack, d.position, d.face].filter((v) => v !== undefined).length;
    if (placed !== 0 && placed !== 3) ctx.addIssue({ code: 'custom', message: 'rack, position and face go together', path: [d.rack === undefined ? 'rack' : d.position === undefined ? 'position' : 'face'] });
    if (d.role === 'colocation' && !d.customerId) ctx.addIssue({ code: 'custom', message: 'a colocation device needs its owner (customerId)', path: ['customerId'] });
    if (d.bmc?.port && hasPort(d.bmc.address)) ctx.addIssue({ code: 'custom', message: `the address ${d.bmc.address} names a port already: give the port in one place`, path: ['bmc', 'port'] });
  });

export const siteFile = z
  .object({
    code: siteCode,
    name: name(200),
    address: z.string().max(500).optional(),
    timezone: timeZone.optional(),
    visitHours: z.object({ opens: timeOfDay, closes: timeOfDay }).strict().optional(),
    racks: z.array(rackFile).optional(),
    powerPanels: z.array(panelFile).optional(),
    devices: z.array(deviceFile).optional(),
  })
  .strict();

export const inventoryFile = z
  .object({
    $schema: z.string().optional(),
    hardwareModels: z.array(hardwareModelFields.partial({ fullDepth: true, maxDrawW: true, typicalDrawW: true, disks: true })).optional(),
    sites: z.array(siteFile).optional(),
    // Billing plans (inventory/plans.yaml) sit beside the inventory; PlansService loads and checks them.
    plans: z
      .array(z.object({ code: z.string(), kind: z.enum(['dedicated', 'vps', 'colocation']), description: z.string().optional(), spec: z.record(z.string(), z.unknown()) }).strict())
      .optional()
      .describe('Billing plans: loaded by `serve` (RACKSMITH_BILLING_PLANS), not by the inventory import'),
  })
  .strict();

export type InventoryFile = z.infer<typeof inventoryFile>;
export type SiteFile = z.infer<typeof siteFile>;
export type DeviceFile = z.infer<typeof deviceFile>;

export function inventoryJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(inventoryFile, { io: 'input' }), title: 'racksmith inventory file' } as Record<string, unknown>;
}
