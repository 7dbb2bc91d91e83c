import { z } from 'zod';
import { isoTime } from '../../common/http/schemas';
import { placementInput } from '../inventory/inventory.schemas';

export const announceInput = z
  .object({
    site: z.string().min(1).max(64).describe('Site id or code'),
    customerId: z.string().trim().min(1).max(100),
    name: z.string().trim().min(1).max(200).describe('Name of the device in the inventory'),
    modelId: z.string().uuid().describe('Hardware model (a generic "Customer 1U" will do)'),
    description: z.string().max(1000).optional(),
    installBy: z.enum(['owner', 'staff']).describe('owner: the customer installs it (free); staff: our engineers do'),
  })
  .strict();

export const receiveInput = z
  .object({
    location: z.enum(['data-center', 'delivery-point']).describe('Received at the data center, or at the Moscow delivery point'),
    serials: z.array(z.string().trim().min(1).max(100)).min(1).max(50),
    condition: z.string().trim().min(1).max(500).describe('e.g. "good", "dented lid, works"'),
    notes: z.string().max(2000).optional(),
  })
  .strict();

export const installInput = z.object({ placement: placementInput, notes: z.string().max(2000).optional() }).strict();
export const removeInput = z.object({ notes: z.string().max(2000).optional() }).strict();

export const visitInput = z
  .object({
    site: z.string().min(1).max(64),
    customerId: z.string().trim().min(1).max(100),
    startsAt: isoTime,
    endsAt: isoTime,
    visitors: z.array(z.object({ name: z.string().trim().min(1).max(200), document: z.string().max(100).optional() }).strict()).min(1).max(20),
    purpose: z.string().max(1000).optional(),
  })
  .strict();

export const decisionInput = z.object({ note: z.string().max(1000).optional() }).strict();
export const completeInput = z.object({ result: z.string().max(2000).optional() }).strict();
