import { z } from 'zod';

const ratio = z.number().min(1).max(100);
export const HYPERVISOR_STATES = ['enabled', 'draining', 'down'] as const;

export const hypervisorInput = z
  .object({
    deviceId: z.uuid().describe('The inventory device (role hypervisor)'),
    ssh: z
      .object({
        host: z.string().min(1).max(255),
        port: z.number().int().min(1).max(65535).default(22),
        user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/).default('root'),
        privateKey: z.string().max(16_384).regex(/^-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+-----END [A-Z ]*PRIVATE KEY-----\s*$/, 'expected a PEM or OpenSSH private key').optional().describe('Stored encrypted, never returned'),
        hostKeySha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected the hex SHA-256 of the host key (ssh-keyscan | ssh-keygen -lf - -E sha256, as hex)').describe('Pinned: a host presenting another key is refused'),
      })
      .strict(),
    libvirtUri: z.string().regex(/^qemu(\+\w+)?:\/\/[^\s?]*\/(system|session)(\?[^\s]*)?$/, 'expected a libvirt URI such as qemu:///system').default('qemu:///system'),
    storagePool: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).default('default'),
    capacity: z.object({ vcpus: z.number().int().min(1).max(4096), ramMb: z.number().int().min(256).max(67_108_864), storageGb: z.number().int().min(1).max(10_000_000) }).strict(),
    overcommit: z.object({ cpu: ratio.default(4), ram: ratio.default(1), storage: ratio.default(1) }).strict().default({ cpu: 4, ram: 1, storage: 1 }),
    state: z.enum(HYPERVISOR_STATES).default('enabled'),
  })
  .strict();

export const hypervisorUpdate = z
  .object({
    state: z.enum(HYPERVISOR_STATES).optional().describe('draining: no new VMs; down: unreachable or in repair'),
    capacity: z.object({ vcpus: z.number().int().min(1).max(4096), ramMb: z.number().int().min(256).max(67_108_864), storageGb: z.number().int().min(1).max(10_000_000) }).partial().strict().optional(),
    overcommit: z.object({ cpu: ratio, ram: ratio, storage: ratio }).partial().strict().optional(),
  })
  .strict();

export type HypervisorInput = z.infer<typeof hypervisorInput>;
export type HypervisorUpdate = z.infer<typeof hypervisorUpdate>;
