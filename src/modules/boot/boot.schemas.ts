import { z } from 'zod';

export const bootNetworkInput = z
  .object({
    site: z.string().min(1).max(64).describe('Site code or id'),
    name: z.string().min(1).max(64),
    cidr: z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/([0-9]|[12][0-9]|3[0-2])$/, 'expected a network such as 10.77.0.0/24').refine((c) => c.split('/')[0]!.split('.').every((o) => Number(o) <= 255), 'expected a network such as 10.77.0.0/24'),
    gateway: z.ipv4().nullish(),
    dns: z.array(z.ipv4()).max(4).default([]).describe('Name servers handed out (the Debian installer needs one to run unattended)'),
    domain: z.string().min(1).max(253).nullish(),
    leaseSeconds: z.number().int().min(60).max(604800).default(3600),
  })
  .strict();
export type BootNetworkInput = z.infer<typeof bootNetworkInput>;
