import { z } from 'zod';

export const OS_TEMPLATES = ['debian-12', 'ubuntu-24.04', 'rocky-9', 'alma-9', 'freebsd-14'] as const;

export const hostname = z
  .string()
  .max(253)
  .regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i, 'expected a host name such as web1.example.com');
export const sshKey = z.string().max(16_384).regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/=]+( .*)?$/, 'expected an OpenSSH public key');
const ipv4Cidr = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/, 'expected an address with prefix, e.g. 192.0.2.10/24');
const ipv4 = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}$/, 'expected an IPv4 address');

export const rootPasswordHash = z
  .string()
  .regex(/^\$6\$[^$]{1,16}\$[./0-9A-Za-z]{86}$/, 'expected a SHA-512 crypt hash ($6$salt$...), e.g. from `openssl passwd -6`');

/** A post-install script's limit: 16 KiB as bytes (UTF-8), the size OVH allows for its own. */
export const POST_INSTALL_MAX_BYTES = 16_384;
export const postInstallScript = z
  .string()
  .min(1)
  .refine((v) => Buffer.byteLength(v) <= POST_INSTALL_MAX_BYTES, `at most ${POST_INSTALL_MAX_BYTES} bytes`)
  .refine((v) => !v.includes('\0'), 'no NUL bytes')
  .describe('Run once as root on the first boot of the installed system (no shebang: /bin/sh), for at most an hour; its exit code and the tail of its output end up in the job log');

const installFields = {
    os: z.enum(OS_TEMPLATES),
    image: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'expected an image name such as debian-12-20261207')
      .optional()
      .describe('Deploy this OS image (GET /api/v1/images) instead of running the OS installer: the fast path'),
    hostname,
    sshKeys: z.array(sshKey).max(20).default([]),
    rootPassword: z.string().min(8).max(128).optional().describe('Hashed (SHA-512 crypt) at once; the password itself is never stored'),
    rootPasswordHash: rootPasswordHash
      .optional()
      .describe('Only the hash is stored and handed to the installer'),
    diskLayout: z.enum(['single', 'raid1']).default('single'),
    postInstallScript: postInstallScript.optional(),
    network: z
      .discriminatedUnion('mode', [
        z.object({ mode: z.literal('dhcp') }).strict(),
        z.object({ mode: z.literal('static'), address: ipv4Cidr, gateway: ipv4, dns: z.array(ipv4).min(1).max(4) }).strict(),
      ])
      .default({ mode: 'dhcp' }),
    queue: z.boolean().default(false).describe('When the server is busy: queue behind its job instead of a 409'),
    installerTimeoutMinutes: z.number().int().min(1).max(240).default(60),
    firstBootTimeoutMinutes: z.number().int().min(1).max(240).optional().describe('Image installs: how long the installed system has to phone home on its first boot'),
};
const hasCredentials = (v: { sshKeys: string[]; rootPassword?: string; rootPasswordHash?: string }) =>
  (v.sshKeys.length > 0 || !!v.rootPassword || !!v.rootPasswordHash) && !(v.rootPassword && v.rootPasswordHash);
const needsCredentials = [hasCredentials, { message: 'give sshKeys and/or one of rootPassword, rootPasswordHash', path: ['sshKeys'] as PropertyKey[] }] as const;

export const installInput = z.object(installFields).strict().refine(...needsCredentials);

/** The same install on many servers at once (each with its host name; addresses by DHCP). */
export const bulkInstallInput = z
  .object(installFields)
  .omit({ hostname: true, network: true })
  .extend({ servers: z.array(z.object({ id: z.string().uuid(), hostname }).strict()).min(1).max(500) })
  .strict()
  .refine(...needsCredentials);

export type InstallInput = z.infer<typeof installInput>;
export type BulkInstallInput = z.infer<typeof bulkInstallInput>;

export const CALLBACK_STATUSES = ['progress', 'done', 'failed', 'booted'] as const;
/** POST …/install-callbacks/{job}/{progress|done|failed}?token=…: the body (JSON or a form) is optional. */
export const statusCallbackQuery = z.object({ token: z.string().min(20).max(200) }).strict();
export const statusCallbackBody = z.object({ message: z.string().max(2000).optional() }).passthrough().nullish();

export const callbackInput = z
  .object({ token: z.string().min(20).max(200), status: z.enum(['started', 'progress', 'done', 'failed', 'booted']), message: z.string().max(2000).optional() })
  .strict();
