import { z } from 'zod';

const ratio = z.number().min(1).max(100);
export const HYPERVISOR_STATES = ['enabled', 'draining', 'down'] as const;
const BRIDGE = z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, 'expected a bridge interface name such as br0');
const SSH_KEYS = z.array(z.string().max(16_384).regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/, 'expected an OpenSSH public key')).max(20).default([]);
const POOL_NAME = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a pool name: lowercase letters, digits, dashes');
/** A host key's SHA-256: hex, or OpenSSH's `SHA256:<base64>` fingerprint (stored as hex). */
const HOST_KEY_SHA256 = z
  .string()
  .trim()
  .regex(/^([0-9a-fA-F]{64}|SHA256:[A-Za-z0-9+/]{43}=?)$/, 'expected the SHA-256 of the host key: 64 hex digits, or the SHA256:… fingerprint ssh-keygen -lf prints')
  .transform((v) => (v.startsWith('SHA256:') ? Buffer.from(v.slice(7), 'base64').toString('hex') : v.toLowerCase()));
export const DOMAIN_TYPES = ['auto', 'kvm', 'qemu'] as const;
const FILE = z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'expected a file name in the storage pool (letters, digits, dot, dash, underscore)');
const SHA256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected a hex SHA-256');
/** A file of an image: its name in each hypervisor's pool and, optionally, where a hypervisor fetches it (checked by its SHA-256). */
const artifact = z
  .object({ file: FILE, url: z.url({ protocol: /^https?$/ }).max(2048).optional(), sha256: SHA256.optional() })
  .strict()
  .refine((a) => !a.url || !!a.sha256, { message: 'a file fetched from a URL needs its sha256', path: ['sha256'] });

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
        hostKeySha256: HOST_KEY_SHA256.describe('Pinned: a host presenting another key is refused. Hex, or the SHA256:… fingerprint `ssh-keyscan -t ed25519 HOST | ssh-keygen -lf -` prints'),
      })
      .strict(),
    libvirtUri: z.string().regex(/^qemu(\+\w+)?:\/\/[^\s?]*\/(system|session)(\?[^\s]*)?$/, 'expected a libvirt URI such as qemu:///system').default('qemu:///system'),
    storagePool: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).default('default'),
    capacity: z.object({ vcpus: z.number().int().min(1).max(4096), ramMb: z.number().int().min(256).max(67_108_864), storageGb: z.number().int().min(1).max(10_000_000) }).strict(),
    overcommit: z.object({ cpu: ratio.default(4), ram: ratio.default(1), storage: ratio.default(1) }).strict().default({ cpu: 4, ram: 1, storage: 1 }),
    state: z.enum(HYPERVISOR_STATES).default('enabled'),
    bridge: BRIDGE.optional().describe('The host bridge VM NICs attach to (none: user-mode networking, for labs)'),
    ipPool: POOL_NAME.optional().describe('The address pool its bridge serves: each VM gets a static address from it (none: DHCP on the bridge)'),
    domainType: z.enum(DOMAIN_TYPES).default('auto').describe('auto: kvm where /dev/kvm is usable on the host, else qemu (emulated); force one where auto guesses wrong'),
  })
  .strict();

export const hypervisorUpdate = z
  .object({
    state: z.enum(HYPERVISOR_STATES).optional().describe('draining: no new VMs; down: unreachable or in repair'),
    capacity: z.object({ vcpus: z.number().int().min(1).max(4096), ramMb: z.number().int().min(256).max(67_108_864), storageGb: z.number().int().min(1).max(10_000_000) }).partial().strict().optional(),
    overcommit: z.object({ cpu: ratio, ram: ratio, storage: ratio }).partial().strict().optional(),
    domainType: z.enum(DOMAIN_TYPES).optional(),
    bridge: BRIDGE.nullable().optional(),
    ipPool: POOL_NAME.nullable().optional(),
  })
  .strict();

export type HypervisorInput = z.infer<typeof hypervisorInput>;
export type HypervisorUpdate = z.infer<typeof hypervisorUpdate>;

export const IMAGE_NAME = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'expected an image name such as debian-12');

export const vmImageInput = z
  .object({
    os: z.string().trim().min(1).max(64).describe('What the image holds, e.g. debian 12'),
    file: FILE.describe('The qcow2 file in each hypervisor storage pool VM disks are overlays of'),
    url: z.url({ protocol: /^https?$/ }).max(2048).optional().describe('Where a hypervisor fetches the file when its pool lacks it'),
    sha256: SHA256.optional(),
    minDiskGb: z.number().int().min(1).max(65_536).default(1),
    boot: z
      .object({ kernel: artifact, initrd: artifact.optional(), cmdline: z.string().max(1024).regex(/^[^\x00-\x1f<>&]*$/, 'no control characters or markup').default('console=ttyS0') })
      .strict()
      .optional()
      .describe('Direct kernel boot (images without a boot loader)'),
    enabled: z.boolean().default(true).describe('false: no new VMs from it; VMs made from it keep running'),
  })
  .strict()
  .refine((v) => !v.url || !!v.sha256, { message: 'a file fetched from a URL needs its sha256', path: ['sha256'] });
export type VmImageInput = z.infer<typeof vmImageInput>;

export const vpsInput = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'expected a VM name: lowercase letters, digits and dashes'),
    hostname: z.string().max(253).regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i, 'expected a host name such as vps1.example.com').optional(),
    customer: z.string().trim().min(1).max(200),
    vcpus: z.number().int().min(1).max(256),
    ramMb: z.number().int().min(256).max(4_194_304),
    diskGb: z.number().int().min(1).max(65_536),
    baseImage: IMAGE_NAME.describe('A base image registered under /api/v1/vps/images'),
    sshKeys: SSH_KEYS,
    rootPassword: z.string().min(8).max(128).optional().describe('Hashed (SHA-512 crypt) at once'),
    site: z.string().max(64).optional(),
    antiAffinity: z.boolean().default(false).describe('Not on a host that already runs a VM of this customer'),
    orderId: z.string().max(128).optional(),
  })
  .strict()
  .refine((v) => v.sshKeys.length > 0 || !!v.rootPassword, { message: 'give sshKeys and/or rootPassword', path: ['sshKeys'] });
export type VpsInput = z.infer<typeof vpsInput>;


export const vpsRebuildInput = z
  .object({
    baseImage: IMAGE_NAME.optional().describe('Another image; the VM\'s own when left out'),
    sshKeys: SSH_KEYS,
    rootPassword: z.string().min(8).max(128).optional(),
  })
  .strict()
  .refine((v) => v.sshKeys.length > 0 || !!v.rootPassword, { message: 'give sshKeys and/or rootPassword', path: ['sshKeys'] });
export type VpsRebuildInput = z.infer<typeof vpsRebuildInput>;

export const ipPoolInput = z
  .object({
    site: z.string().max(64).describe('Site code or id'),
    network: z.cidrv4().describe('The subnet, e.g. 203.0.113.0/24'),
    gateway: z.ipv4(),
    dns: z.array(z.ipv4()).max(4).default([]),
    firstAddress: z.ipv4().describe('First address handed to VMs'),
    lastAddress: z.ipv4().describe('Last address handed to VMs'),
  })
  .strict();
export type IpPoolInput = z.infer<typeof ipPoolInput>;
export { POOL_NAME };
