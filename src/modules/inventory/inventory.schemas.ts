import { z } from 'zod';
import { normalizeMac } from './inventory.repositories';

/**
 * Input shapes shared by the REST API and the YAML inventory import (whose JSON Schema is
 * generated from these), so both accept and refuse the same things.
 */

export const DEVICE_ROLES = ['rented-server', 'colocation', 'hypervisor', 'network', 'pdu'] as const;
export const BMC_DRIVERS = ['ipmitool', 'redfish', 'fake'] as const;
export const FACES = ['front', 'rear'] as const;

const name = (max = 100) => z.string().trim().min(1).max(max);
export const timeOfDay = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected HH:MM');
/** An IANA time zone this Node knows ("Europe/Moscow"). */
export const timeZone = z.string().min(1).max(64).refine((tz) => {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}, 'expected an IANA time zone such as Europe/Moscow');

export const siteCode = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lowercase letters, digits and dashes, up to 32');

export const siteInput = z
  .object({
    code: siteCode,
    name: name(200),
    address: z.string().max(500).nullish(),
    timezone: timeZone.optional(),
    visitHours: z.object({ opens: timeOfDay, closes: timeOfDay }).strict().refine((v) => v.opens < v.closes, 'opens must be before closes').optional(),
  })
  .strict();

export const rackInput = z
  .object({
    site: z.string().min(1).max(64).describe('Site id or code'),
    name: name(),
    location: z.string().max(200).nullish(),
    heightU: z.number().int().min(1).max(60).default(42),
    powerBudgetW: z.number().int().min(0).max(1_000_000).nullish(),
  })
  .strict();

export const diskSpec = z.object({ kind: z.enum(['hdd', 'ssd', 'nvme']), sizeGb: z.number().int().positive(), count: z.number().int().min(1).max(64) }).strict();

export const hardwareModelFields = z
  .object({
    vendor: name(),
    model: name(),
    heightU: z.number().int().min(0).max(20),
    fullDepth: z.boolean().default(true),
    maxDrawW: z.number().int().min(0).max(100_000).default(0),
    typicalDrawW: z.number().int().min(0).max(100_000).default(0),
    bmcDriver: z.enum(BMC_DRIVERS).nullish(),
    cpu: z.string().max(200).nullish(),
    cpuCores: z.number().int().positive().max(4096).nullish(),
    ramGb: z.number().int().positive().max(65536).nullish(),
    disks: z.array(diskSpec).max(64).default([]),
  })
  .strict();
export const hardwareModelInput = hardwareModelFields.refine((m) => m.typicalDrawW <= m.maxDrawW, { message: 'typicalDrawW must not exceed maxDrawW', path: ['typicalDrawW'] });

export const macAddress = z
  .string()
  .transform((v, ctx) => {
    const mac = normalizeMac(v);
    if (!mac) ctx.addIssue({ code: 'custom', message: 'expected a MAC address like 52:54:00:12:34:56' });
    return mac ?? v;
  })
  .pipe(z.string());

export const nicInput = z.object({ name: name(50), mac: macAddress, pxe: z.boolean().default(false), ip: z.ipv4().nullish().describe('Address reserved for this NIC on a provisioning network (racksmith DHCP, authoritative mode)') }).strict();

export const placementInput = z
  .object({
    rack: z.string().uuid(),
    position: z.number().int().min(1).max(60).describe('Lowest unit the device occupies (1 = bottom)'),
    face: z.enum(FACES),
  })
  .strict();

export const bmcInput = z
  .object({
    address: z.string().min(1).max(255).describe('Host name or IP of the BMC'),
    port: z.number().int().min(1).max(65535).nullish().describe('The BMC\'s port when it is not the driver\'s default (IPMI: UDP 623; Redfish: HTTPS 443), e.g. behind NAT'),
    driver: z.enum(BMC_DRIVERS).nullish(),
    username: z.string().min(1).max(64).nullish(),
    password: z.string().min(1).max(128).nullish().describe('Stored encrypted; never returned'),
    passwordRef: z.string().regex(/^[a-z0-9][a-z0-9.-]{0,62}$/).nullish().describe('A named credential (GET /api/v1/bmc-credentials) instead of a password: `racksmith secrets set NAME`'),
    consoleDriver: z.enum(BMC_DRIVERS).nullish().describe('Driver for the serial console when it differs from `driver` (a Redfish BMC: `ipmitool`, for SOL)'),
    acceptPrivilegeRisk: z.boolean().nullish().describe('Hand out IPKVM grants even if this BMC is found not to enforce privilege limits (a customer could gain ADMINISTRATOR); audited on every grant'),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.port && hasPort(b.address)) ctx.addIssue({ code: 'custom', path: ['port'], message: `the address ${b.address} names a port already: give the port in one place` });
    if (b.password && b.passwordRef) ctx.addIssue({ code: 'custom', path: ['passwordRef'], message: 'a password or a passwordRef, not both' });
  });

/** Whether a BMC address carries a port ("host:port", "[v6]:port"). */
export function hasPort(address: string): boolean {
  return /^\[[^\]]+\]:\d+$/.test(address) || /^[^:\[\]]+:\d+$/.test(address);
}

const deviceFields = {
  site: z.string().min(1).max(64).describe('Site id or code'),
  name: name(200),
  role: z.enum(DEVICE_ROLES),
  modelId: z.string().uuid(),
  assetTag: z.string().trim().min(1).max(100).nullish(),
  serial: z.string().trim().min(1).max(100).nullish(),
  customerId: z.string().trim().min(1).max(100).nullish().describe('Owner: the billing customer id (colocation, rented servers)'),
  placement: placementInput.nullish(),
  nics: z.array(nicInput).max(32).optional(),
  bmc: bmcInput.nullish(),
  notes: z.string().max(2000).nullish(),
};

function nicsDistinct(d: { nics?: { name: string; mac: string; pxe: boolean; ip?: string | null }[] }, ctx: z.RefinementCtx) {
  const nics = d.nics ?? [];
  const names = new Set<string>();
  const macs = new Set<string>();
  nics.forEach((n, i) => {
    if (names.has(n.name)) ctx.addIssue({ code: 'custom', message: `NIC name ${n.name} appears twice`, path: ['nics', i, 'name'] });
    if (macs.has(n.mac)) ctx.addIssue({ code: 'custom', message: `MAC ${n.mac} appears twice`, path: ['nics', i, 'mac'] });
    names.add(n.name);
    macs.add(n.mac);
  });
  if (nics.filter((n) => n.pxe).length > 1) ctx.addIssue({ code: 'custom', message: 'at most one NIC boots from the network (pxe)', path: ['nics'] });
}

export const deviceInput = z
  .object(deviceFields)
  .strict()
  .superRefine((d, ctx) => {
    nicsDistinct(d, ctx);
    if (d.role === 'colocation' && !d.customerId) ctx.addIssue({ code: 'custom', message: 'a colocation device needs its owner (customerId)', path: ['customerId'] });
  });

export const deviceUpdate = z.object(deviceFields).partial().strict().superRefine(nicsDistinct);

export type SiteInput = z.infer<typeof siteInput>;
export type RackInput = z.infer<typeof rackInput>;
export type HardwareModelInput = z.infer<typeof hardwareModelInput>;
export type DeviceInput = z.infer<typeof deviceInput>;
export type DeviceUpdate = z.infer<typeof deviceUpdate>;

export const powerPanelInput = z.object({ site: z.string().min(1).max(64), name: name() }).strict();
export const powerFeedInput = z
  .object({
    panelId: z.string().uuid(),
    rackId: z.string().uuid().nullish().describe('The rack this feed serves, if one'),
    name: name(),
    voltage: z.number().int().min(1).max(1000).default(230),
    amperage: z.number().int().min(1).max(1000),
    phase: z.enum(['single', 'three']).default('single'),
    maxUtilizationPct: z.number().int().min(1).max(100).default(80),
  })
  .strict();
export const pduInput = z
  .object({ feedId: z.string().uuid(), deviceId: z.string().uuid().nullish(), name: name(), outlets: z.number().int().min(1).max(256).default(24) })
  .strict();
export const powerConnectionInput = z
  .object({
    deviceId: z.string().uuid(),
    pduId: z.string().uuid(),
    outlet: z.number().int().min(1).max(256).nullish(),
    allocatedW: z.number().int().min(0).max(100_000),
    maxW: z.number().int().min(0).max(100_000).optional().describe('Defaults to the model\'s maximum draw'),
  })
  .strict();

/** `POST /api/v1/devices/bmc`: BMC credentials of many devices in one call (all or nothing). */
export const bulkBmcInput = z
  .object({
    devices: z
      .array(
        z
          .object({
            id: z.string().uuid().optional(),
            site: z.string().min(1).max(64).optional(),
            name: z.string().min(1).max(200).optional(),
            username: z.string().min(1).max(64).optional(),
            password: z.string().min(1).max(128).optional(),
            passwordRef: z.string().regex(/^[a-z0-9][a-z0-9.-]{0,62}$/).optional(),
          })
          .strict()
          .superRefine((d, ctx) => {
            if (!d.id && !(d.site && d.name)) ctx.addIssue({ code: 'custom', path: ['id'], message: 'name the device by id, or by site and name' });
            if (d.password && d.passwordRef) ctx.addIssue({ code: 'custom', path: ['passwordRef'], message: 'a password or a passwordRef, not both' });
            if (!d.username && !d.password && !d.passwordRef) ctx.addIssue({ code: 'custom', path: ['password'], message: 'nothing to set: give a username, a password or a passwordRef' });
          }),
      )
      .min(1)
      .max(2000),
  })
  .strict();
export type BulkBmcInput = z.infer<typeof bulkBmcInput>;
