import { z } from 'zod';
import { OS_TEMPLATES } from '../servers/install.schemas';
import { hostname, sshKey } from '../servers/install.schemas';

export const EVENT_TYPES = ['order.paid', 'order.suspended', 'order.unsuspended', 'order.terminated'] as const;
export type EventType = (typeof EVENT_TYPES)[number];
export const PLAN_KINDS = ['dedicated', 'vps', 'colocation'] as const;
export type PlanKind = (typeof PLAN_KINDS)[number];

const billingId = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/, 'expected letters, digits and . _ : -');
export const planCode = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'expected a plan code: letters, digits and . _ -');
const siteCode = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'expected a site code');

export const orderOptions = z
  .object({
    os: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'expected an OS template (dedicated) or image name (vps), such as debian-12').optional().describe('Dedicated: an OS template; VPS: an image (GET /api/v1/vps/images)'),
    hostname: hostname.optional(),
    sshKeys: z.array(sshKey).max(20).optional(),
    site: siteCode.optional().describe('Preferred site; another is used when it has no stock'),
  })
  .strict();
export type OrderOptions = z.infer<typeof orderOptions>;

/** What the billing system posts to /webhooks/billing. */
export const billingEvent = z
  .object({
    id: billingId.describe('Unique per event: a redelivery carries the same id'),
    type: z.enum(EVENT_TYPES),
    occurredAt: z.iso.datetime({ offset: true }).describe('When it happened in billing (orders the events of one order)'),
    order: z
      .object({
        id: billingId,
        customer: z.string().trim().min(1).max(200),
        plan: planCode.optional(),
        options: orderOptions.default({}),
      })
      .strict(),
  })
  .strict()
  .superRefine((e, ctx) => {
    if (e.type === 'order.paid' && !e.order.plan) ctx.addIssue({ code: 'custom', path: ['order', 'plan'], message: 'a paid order names its plan' });
  });
export type BillingEvent = z.infer<typeof billingEvent>;

const dedicatedSpec = z
  .object({
    hardwareModel: z.string().min(1).max(200).optional().describe('"Vendor/Model", as in the inventory'),
    minCpuCores: z.number().int().min(1).max(1024).optional(),
    minRamGb: z.number().int().min(1).max(65536).optional(),
    minDiskGb: z.number().int().min(1).max(10_000_000).optional().describe('Total of all disks'),
    sites: z.array(siteCode).max(10).optional().describe('Sites the plan is sold in (default: any)'),
    diskLayout: z.enum(['single', 'raid1']).default('single'),
    osChoices: z.array(z.enum(OS_TEMPLATES)).min(1).max(OS_TEMPLATES.length).optional().describe('The OSes a customer may reinstall (POST /api/v1/my/servers/{id}/reinstall); default: defaultOs and the OSes of images'),
    diskLayouts: z.array(z.enum(['single', 'raid1'])).min(1).max(2).optional().describe('The disk layouts a customer may reinstall with; default: diskLayout'),
    ipkvm: z.boolean().default(true).describe('The customer gets IPKVM access (a BMC account and the serial console) with the server: only servers whose BMC can give it are picked'),
    defaultOs: z.enum(OS_TEMPLATES).default('debian-12'),
    images: z
      .partialRecord(z.enum(OS_TEMPLATES), z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/))
      .optional()
      .describe('OS images (GET /api/v1/images) this plan deploys, by OS: an order for one of these OSes is deployed from its image, the others run the installer'),
  })
  .strict();
const vpsSpec = z
  .object({
    vcpus: z.number().int().min(1).max(256),
    ramMb: z.number().int().min(256).max(4_194_304),
    diskGb: z.number().int().min(1).max(65536),
    image: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/).default('debian-12').describe('The image a VM is made from when the order names none'),
    sites: z.array(siteCode).max(10).optional().describe('Sites the plan is sold in (default: any)'),
  })
  .strict();
export type VpsSpec = z.infer<typeof vpsSpec>;
const colocationSpec = z.object({ units: z.number().int().min(1).max(48), powerW: z.number().int().min(1).max(100_000), sites: z.array(siteCode).max(10).optional() }).strict();

const SPECS = { dedicated: dedicatedSpec, vps: vpsSpec, colocation: colocationSpec } as const;

const planBase = z.object({ kind: z.enum(PLAN_KINDS), description: z.string().max(500).optional(), spec: z.record(z.string(), z.unknown()) }).strict();

/** The spec checked against the plan's kind (defaults filled in); its faults named under `spec`. */
function checkSpec<T extends z.infer<typeof planBase>>(v: T, ctx: z.RefinementCtx): T {
  const spec = SPECS[v.kind].safeParse(v.spec);
  if (spec.success) return { ...v, spec: spec.data as Record<string, unknown> };
  for (const issue of spec.error.issues) ctx.addIssue({ code: 'custom', path: ['spec', ...issue.path], message: issue.message });
  return z.NEVER;
}
export const planInput = planBase.transform(checkSpec);
export type PlanInput = z.infer<typeof planInput>;
export type DedicatedSpec = z.infer<typeof dedicatedSpec>;

/** inventory/plans.yaml */
export const plansFile = z.object({ plans: z.array(planBase.extend({ code: planCode }).transform(checkSpec)).max(1000) }).strict();
