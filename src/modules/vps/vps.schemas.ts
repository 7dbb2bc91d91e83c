import { z } from 'zod';

const ratio = z.number().min(1).max(100);
export const HYPERVISOR_STATES = ['enabled', 'draining', 'down'] as const;

export const hypervisorInput = z
  .object({
    deviceId: z.uuid().describe('The inventory device (role hypervisor)'),
    driver: z.enum(['libvirt-over-ssh', 'fake']).default('libvirt-over-ssh').describe('fake: in memory, for tests and demos'),
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

export const vpsInput = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a VM name: lowercase letters, digits and dashes'),
    hostname: z.string().max(253).regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i, 'expected a host name such as vps1.example.com').optional(),
    customer: z.string().trim().min(1).max(200),
    vcpus: z.number().int().min(1).max(256),
    ramMb: z.number().int().min(256).max(4_194_304),
    diskGb: z.number().int().min(1).max(65_536),
    baseImage: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'expected a base image file name in the storage pool'),
    sshKeys: z.array(z.string().max(16_384).regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/, 'expected an OpenSSH public key')).max(20).default([]),
    rootPassword: z.string().min(8).max(128).optional().describe('Hashed (SHA-512 crypt) at once'),
    site: z.string().max(64).optional(),
    antiAffinity: z.boolean().default(false).describe('Not on a host that already runs a VM of this customer'),
    orderId: z.string().max(128).optional(),
  })
  .strict()
  .refine((v) => v.sshKeys.length > 0 || !!v.rootPassword, { message: 'give sshKeys and/or rootPassword', path: ['sshKeys'] });
export type VpsInput = z.infer<typeof vpsInput>;
