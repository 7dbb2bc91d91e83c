import { z } from 'zod';
import { OS_TEMPLATES } from '../servers/install.schemas';

export const OS_IMAGE_NAME = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'expected an image name such as debian-12-20261207');

export const osImageInput = z
  .object({
    os: z.enum(OS_TEMPLATES).describe('The OS it holds: an install of this OS may use it'),
    format: z.enum(['raw', 'raw.gz']).default('raw.gz').describe('raw.gz: a raw disk image, gzip\'d (what `racksmith images build` writes)'),
    file: z.string().regex(/^\/[^\0]{1,1023}$/, 'expected an absolute path').describe('Where the agent keeps the file (it serves it on the provisioning network); with url, where it caches it'),
    url: z.url({ protocol: /^https?$/ }).max(2048).optional().describe('Where an agent fetches the file when it does not have it (checked by SHA-256)'),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected a hex SHA-256').describe('Of the file as served; the deploy ramdisk checks it as it writes'),
    diskBytes: z.number().int().min(1).max(2 ** 50).describe('Size of the raw disk: the smallest disk the image fits on'),
    enabled: z.boolean().default(true).describe('false: no new installs from it'),
  })
  .strict();
export type OsImageInput = z.infer<typeof osImageInput>;
