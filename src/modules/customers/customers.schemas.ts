import { z } from 'zod';
import { isoTime } from '../../common/http/schemas';
import { hostname, OS_TEMPLATES, postInstallScript, rootPasswordHash, sshKey } from '../servers/install.schemas';

/** The billing system's customer id, as orders name it. */
export const customerId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$/);
export const sshKeys = z.array(sshKey).max(50);

export const upsertCustomerInput = z
  .object({
    name: z.string().trim().min(1).max(200),
    email: z.string().trim().email().max(254).nullish(),
    sshKeys: sshKeys.optional().describe('OpenSSH public keys: the default for installs, rescue and the SSH console'),
  })
  .strict();

export const disableCustomerInput = z.object({ disabled: z.boolean(), reason: z.string().max(500).optional() }).strict();

export const createCustomerTokenInput = z
  .object({
    name: z.string().trim().min(1).max(100).describe('What the token is for, e.g. "terraform" or "monitoring"'),
    expiresAt: isoTime.optional().describe('ISO time after which the token stops working'),
  })
  .strict();

export const loginInput = z.object({ code: z.string().min(1).max(200).describe('The code of a one-time login link (after the # of its URL)') }).strict();

/** A customer's reinstall of their own server: what the plan allows, their keys by default. */
export const reinstallInput = z
  .object({
    os: z.enum(OS_TEMPLATES).describe("One of the plan's osChoices"),
    diskLayout: z.enum(['single', 'raid1']).optional().describe("One of the plan's diskLayouts (default: the plan's diskLayout)"),
    hostname,
    sshKeys: sshKeys.optional().describe("Default: the customer's own keys"),
    rootPasswordHash: rootPasswordHash.optional(),
    postInstallScript: postInstallScript.optional(),
  })
  .strict();
export type ReinstallInput = z.infer<typeof reinstallInput>;
