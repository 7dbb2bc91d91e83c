import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/**
 * The one configuration object. Nothing else in racksmith reads process.env.
 *
 * Every setting has an environment name and a key in the optional YAML file named by
 * RACKSMITH_CONFIG; the environment wins over the file. Unknown RACKSMITH_* variables and
 * unknown file keys are errors, so a typo never silently falls back to a default.
 */

export const ROLES = ['all', 'api', 'agent'] as const;
export type ProcessRole = (typeof ROLES)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')]);
/** HTTPS anywhere; plain HTTP only to this host (tests, a local relay). */
export function isHttpsOrLoopback(url: string): boolean {
  try {
    const u = new URL(url);
    if (u.protocol === 'https:') return true;
    return u.protocol === 'http:' && (u.hostname === 'localhost' || /^127\./.test(u.hostname) || u.hostname === '[::1]');
  } catch {
    return false;
  }
}

const siteCode = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/);

interface Setting {
  env: string;
  key: string; // dotted key in the YAML file
  schema: z.ZodType;
  default?: unknown;
  expected: string;
  description: string;
  secret?: boolean;
  /** An empty value is a value (normally an empty variable counts as unset). */
  allowEmpty?: boolean;
}

export const SETTINGS: readonly Setting[] = [
  { env: 'DATABASE_URL', key: 'database.url', schema: z.string().url().refine((u) => /^postgres(ql)?:\/\//.test(u)), expected: 'a postgres:// URL', description: 'External PostgreSQL. Unset: `serve` runs an embedded PostgreSQL in the data directory.', secret: true },
  { env: 'RACKSMITH_DB_CONNECT_TIMEOUT', key: 'database.connectTimeout', schema: int(1, 60), default: 5, expected: 'seconds, an integer from 1 to 60', description: 'How long to wait for PostgreSQL before start-up fails naming the host.' },
  { env: 'RACKSMITH_DB_POOL_SIZE', key: 'database.poolSize', schema: int(1, 200), default: 20, expected: 'an integer from 1 to 200', description: 'Connections per process for API requests. A request waiting longer than RACKSMITH_DB_CONNECT_TIMEOUT for one fails with a 503.' },
  { env: 'RACKSMITH_DB_BACKGROUND_POOL_SIZE', key: 'database.backgroundPoolSize', schema: int(2, 200), default: 8, expected: 'an integer from 2 to 200', description: 'Connections per `serve` process, apart from the API\'s, for job tasks and their heartbeats, the job reaper and the schedulers (power-state sync, VPS sync, console grants, billing, boot announcements): API load never starves them.' },
  { env: 'RACKSMITH_EMBEDDED_PG_PORT', key: 'database.embeddedPort', schema: int(1024, 65535), default: 54329, expected: 'a TCP port from 1024 to 65535', description: 'Port of the embedded PostgreSQL (listens on 127.0.0.1 only).' },
  { env: 'RACKSMITH_DATA_DIR', key: 'dataDir', schema: z.string().min(1), default: './var', expected: 'a directory path', description: 'Where the embedded PostgreSQL and other local state live.' },
  { env: 'RACKSMITH_HOST', key: 'http.host', schema: z.string().min(1), default: '127.0.0.1', expected: 'an address to bind', description: 'HTTP listen address. Use `0.0.0.0` to serve other hosts.' },
  { env: 'RACKSMITH_PORT', key: 'http.port', schema: int(0, 65535), default: 8080, expected: 'a TCP port from 0 to 65535', description: 'HTTP listen port (0 picks a free one).' },
  { env: 'RACKSMITH_BODY_LIMIT', key: 'http.bodyLimit', schema: int(1024, 100 * 1024 * 1024), default: 1048576, expected: 'bytes, an integer from 1024 to 104857600', description: 'Largest accepted request body; larger gets 413.' },
  { env: 'RACKSMITH_TRUST_PROXY', key: 'http.trustProxy', schema: bool, default: false, expected: 'true or false', description: 'Take the client address from X-Forwarded-For (behind a reverse proxy).' },
  { env: 'RACKSMITH_SHUTDOWN_TIMEOUT', key: 'http.shutdownTimeout', schema: int(1, 300), default: 15, expected: 'seconds, an integer from 1 to 300', description: 'On SIGTERM, how long requests in flight may take before the process exits anyway.' },
  { env: 'RACKSMITH_LOG_LEVEL', key: 'log.level', schema: z.enum(LOG_LEVELS), default: 'info', expected: LOG_LEVELS.join(', '), description: 'Log level.' },
  { env: 'RACKSMITH_LOG_FORMAT', key: 'log.format', schema: z.enum(['json', 'pretty']), default: 'json', expected: 'json or pretty', description: 'JSON lines (for log shippers) or human-readable.' },
  { env: 'RACKSMITH_BOOTSTRAP_TOKEN', key: 'auth.bootstrapToken', schema: z.string().min(24).max(512), expected: 'a string of at least 24 characters', description: 'Accepted as an admin API token (automation, first start). Unset: the first start on an empty database creates an admin token and prints it once.', secret: true },
  { env: 'RACKSMITH_SECRET_KEY', key: 'secrets.key', schema: z.string().regex(/^([0-9a-fA-F]{64}|[A-Za-z0-9+/]{43}=)$/), expected: '32 bytes as 64 hex digits or 44 base64 characters', description: 'AES-256-GCM key for secrets at rest (BMC credentials). Unset: a key is generated once in `<dataDir>/secret.key`. Every process on one database needs the same key.', secret: true },
  { env: 'RACKSMITH_INVENTORY_SEED', key: 'inventory.seed', schema: z.string(), default: 'inventory', expected: 'a directory of inventory YAML, or "" for none', description: 'On a start against a database with no sites, `serve` imports this inventory (relative paths from the racksmith folder). The shipped `inventory/` holds both data centers. `""` turns it off.', allowEmpty: true },
  { env: 'RACKSMITH_JOB_CONCURRENCY', key: 'jobs.concurrency', schema: int(1, 256), default: 4, expected: 'an integer from 1 to 256', description: 'Job tasks one worker process runs at once (roles all and agent). A task waiting for an installer holds none.' },
  { env: 'RACKSMITH_JOB_HEARTBEAT_TIMEOUT', key: 'jobs.heartbeatTimeout', schema: int(3, 600), default: 15, expected: 'seconds, an integer from 3 to 600', description: 'A running job task whose worker sent no heartbeat for this long is taken over by another worker (after a crash or kill -9).' },
  { env: 'RACKSMITH_JOB_EVENTS', key: 'jobs.events', schema: z.enum(['notify', 'poll']), default: 'notify', expected: 'notify or poll', description: 'How job progress streams (SSE) learn of a step: PostgreSQL LISTEN/NOTIFY on a connection of its own (polling every 300 ms only while that connection is down), or polling every 300 ms.' },
  { env: 'RACKSMITH_IPMITOOL', key: 'bmc.ipmitool', schema: z.string().min(1), default: 'ipmitool', expected: 'a program name or path', description: 'The ipmitool program used by the `ipmitool` BMC driver.' },
  { env: 'RACKSMITH_IPMIPOWER', key: 'bmc.ipmipower', schema: z.string(), default: 'ipmipower', expected: 'a program name or path, or "" for none', description: 'FreeIPMI\'s ipmipower, used by the power-state sync to read the power of many IPMI BMCs from one process. `""` (or the program missing): one ipmitool run per BMC.', allowEmpty: true },
  { env: 'RACKSMITH_IPMIPOWER_WORKAROUNDS', key: 'bmc.ipmipowerWorkarounds', schema: z.string().regex(/^[a-z0-9,]*$/), default: '', expected: 'FreeIPMI workaround flags, comma-separated', description: 'FreeIPMI `-W` flags for ipmipower, for BMCs that bend IPMI 2.0 (`opensesspriv` for OpenIPMI\'s ipmi_sim).', allowEmpty: true },
  { env: 'RACKSMITH_IPMI_CIPHER_SUITE', key: 'bmc.cipherSuite', schema: int(1, 17), default: 3, expected: 'an RMCP+ cipher suite number from 1 to 17', description: 'Cipher suite for IPMI over LAN (`-C`). 3 = HMAC-SHA1 + AES-128; suite 0 (no authentication) is refused.' },
  { env: 'RACKSMITH_REDFISH_CA', key: 'bmc.redfishCa', schema: z.string().min(1), expected: 'a path to a PEM file', description: 'CA certificates (PEM) the `redfish` driver checks BMC certificates against, on top of the system\'s. BMCs mostly carry self-signed certificates: put those (or the CA that signed them) here.' },
  { env: 'RACKSMITH_REDFISH_VERIFY_TLS', key: 'bmc.redfishVerifyTls', schema: bool, default: true, expected: 'true or false', description: 'false: the `redfish` driver accepts any BMC certificate (a lab only: the BMC password then goes to whoever answers).' },
  { env: 'RACKSMITH_BMC_TIMEOUT', key: 'bmc.timeout', schema: int(1, 30), default: 1, expected: 'seconds, an integer from 1 to 30', description: 'Seconds per attempt to reach a BMC; with the retries this bounds how long a dead BMC holds a call (about 2 s with the defaults).' },
  { env: 'RACKSMITH_BMC_RETRIES', key: 'bmc.retries', schema: int(0, 10), default: 1, expected: 'an integer from 0 to 10', description: 'Attempts after the first for each BMC call.' },
  { env: 'RACKSMITH_POWER_SYNC_INTERVAL', key: 'power.syncInterval', schema: int(0, 86400), default: 300, expected: 'seconds, an integer from 0 to 86400', description: 'How often the power state of every server with a BMC is read and recorded (roles all and agent). 0 turns the sync off.' },
  { env: 'RACKSMITH_POWER_SYNC_CONCURRENCY', key: 'power.syncConcurrency', schema: int(1, 512), default: 32, expected: 'an integer from 1 to 512', description: 'BMCs asked at once by the power-state sync.' },
  { env: 'RACKSMITH_CONSOLE_SLOTS', key: 'console.slots', schema: z.string().regex(/^\d{1,2}-\d{1,2}$/).refine((v) => { const [a, b] = v.split('-').map(Number); return a! >= 3 && b! <= 63 && a! <= b!; }), default: '10-15', expected: 'a range of BMC user slots like 10-15, inside 3-63', description: 'BMC user slots racksmith may use for IPKVM grants. Keep staff accounts out of this range: racksmith removes accounts in it that it does not know.' },
  { env: 'RACKSMITH_CONSOLE_MAX_TTL', key: 'console.maxTtl', schema: int(300, 90 * 86400), default: 30 * 86400, expected: 'seconds, an integer from 300 to 7776000', description: 'Longest IPKVM grant (and extension) a request may ask for.' },
  { env: 'RACKSMITH_CONSOLE_RECONCILE_INTERVAL', key: 'console.reconcileInterval', schema: int(0, 86400), default: 60, expected: 'seconds, an integer from 0 to 86400', description: 'How often the sweep revokes ended grants that are left (a failed revocation, a suspended server), arms the expiry timers of grants made by another process, and removes unknown racksmith accounts (also once at start). A grant ends at its expiresAt by its own timer, not by the sweep. 0 turns the schedule off.' },
  { env: 'RACKSMITH_PUBLIC_URL', key: 'http.publicUrl', schema: z.string().url().refine((u) => /^https?:\/\//.test(u)), expected: 'an http(s):// URL', description: 'How customers reach racksmith, for the web console links in grants. Unset: taken from the request.' },
  { env: 'RACKSMITH_BOOT_ADDRESS', key: 'boot.address', schema: z.ipv4(), expected: 'an IPv4 address of this host', description: 'Address of the provisioning network the boot services (TFTP; DHCP and HTTP boot as they land) bind to, in roles all and agent. Unset: the boot services stay off, and `/health` says so.' },
  { env: 'RACKSMITH_BOOT_INTERFACE', key: 'boot.interface', schema: z.string().regex(/^[A-Za-z0-9_.:@-]{1,15}$/), expected: 'a network interface name', description: 'The provisioning network\'s interface: its IPv4 address becomes the boot address (or must be it, when both are set). DHCP still listens on all interfaces (Node.js cannot bind a socket to one) and answers only known MACs.' },
  { env: 'RACKSMITH_TFTP_PORT', key: 'boot.tftpPort', schema: int(0, 65535), default: 69, expected: 'a UDP port', description: 'TFTP port (69 needs root or CAP_NET_BIND_SERVICE).' },
  { env: 'RACKSMITH_TFTP_ROOT', key: 'boot.tftpRoot', schema: z.string().min(1), default: '/usr/lib/ipxe', expected: 'a directory', description: 'Files TFTP serves (the Debian `ipxe` package: undionly.kpxe, ipxe.efi, snponly.efi). Names outside it are refused.' },
  { env: 'RACKSMITH_TFTP_MAX_TRANSFERS', key: 'boot.tftpMaxTransfers', schema: int(1, 10000), default: 1000, expected: 'an integer from 1 to 10000', description: 'TFTP transfers at once; more are told "server busy" (at most 16 per client address).' },
  { env: 'RACKSMITH_TFTP_SENDER', key: 'boot.tftpSender', schema: z.enum(['auto', 'native', 'js']), default: 'auto', expected: 'auto, native or js', description: 'Who sends TFTP blocks: `native` (a thread per transfer in C, built by `npm install` with make and a C compiler; faster in lock-step), `js` (the event loop), `auto` (native when built). The same rules either way.' },
  { env: 'RACKSMITH_TFTP_SPIN_US', key: 'boot.tftpSpinUs', schema: int(0, 1000), default: 50, expected: 'microseconds, an integer from 0 to 1000', description: 'Native sender: how long a transfer waiting for an ACK spins before it sleeps (at most one transfer per spare core spins at once). Waking a sleeping thread costs more than a fast ACK takes; 0 never spins (no CPU spent waiting).' },
  { env: 'RACKSMITH_DHCP_MODE', key: 'boot.dhcpMode', schema: z.enum(['proxy', 'authoritative', 'off']), default: 'proxy', expected: 'proxy, authoritative or off', description: 'proxy: boot information only, next to the data center\'s DHCP server (ports 67 and 4011). authoritative: racksmith hands out the reserved addresses of known servers on its provisioning networks. off: no DHCP.' },
  { env: 'RACKSMITH_DHCP_BIND', key: 'boot.dhcpBindAddress', schema: z.ipv4(), default: '0.0.0.0', expected: 'an IPv4 address', description: 'Address the DHCP sockets bind to; 0.0.0.0 is needed to receive broadcasts (Node.js cannot bind a socket to one interface).' },
  { env: 'RACKSMITH_DHCP_PORT', key: 'boot.dhcpPort', schema: int(0, 65535), default: 67, expected: 'a UDP port', description: 'DHCP server port.' },
  { env: 'RACKSMITH_DHCP_PROXY_PORT', key: 'boot.dhcpProxyPort', schema: int(0, 65535), default: 4011, expected: 'a UDP port', description: 'proxyDHCP port PXE clients ask for their boot file.' },
  { env: 'RACKSMITH_DHCP_BROADCAST', key: 'boot.dhcpBroadcast', schema: z.ipv4(), default: '255.255.255.255', expected: 'an IPv4 address', description: 'Where replies to clients without an address go (tests on loopback set 127.0.0.1).' },
  { env: 'RACKSMITH_DHCP_CLIENT_PORT', key: 'boot.dhcpClientPort', schema: int(1, 65535), default: 68, expected: 'a UDP port', description: 'DHCP client port replies go to.' },
  { env: 'RACKSMITH_BOOT_HTTP_PORT', key: 'boot.httpPort', schema: int(0, 65535), default: 8081, expected: 'a TCP port from 0 to 65535', description: 'Port of the boot listener: an HTTP server on the boot address serving what machines fetch (`/boot/...`: iPXE scripts, kernels, templates, images) and the installers\' callbacks. The API listener does not serve `/boot/...`. 0 picks a free one.' },
  { env: 'RACKSMITH_BOOT_HTTP_URL', key: 'boot.httpUrl', schema: z.string().url().refine((u) => /^https?:\/\//.test(u)), expected: 'an http(s):// URL', description: 'How machines on the provisioning network reach the boot listener (iPXE scripts, kernels), when a proxy or NAT stands between. Unset: http://<boot address>:<boot HTTP port>.' },
  { env: 'RACKSMITH_BOOT_ASSETS', key: 'boot.assets', schema: z.string().min(1), default: 'pxe/boot-assets.yaml', expected: 'a YAML file', description: 'Kernels, initrds and command lines of the installers by OS template (relative paths from the racksmith folder).' },
  { env: 'RACKSMITH_INSTALL_PROXY', key: 'boot.installProxy', schema: z.string().url(), expected: 'an http(s):// URL', description: 'HTTP proxy the installers use for their mirror (rendered into the install templates).' },
  { env: 'RACKSMITH_BOOT_DISCOVERY', key: 'boot.discovery', schema: bool, default: false, expected: 'true or false', description: 'Record the MACs of machines racksmith does not know that ask to network-boot (`GET /api/v1/boot/discovered`); they still get no answer.' },
  { env: 'RACKSMITH_BILLING_SECRETS', key: 'billing.secrets', schema: z.string().transform((v) => v.split(',').map((x) => x.trim()).filter(Boolean)).pipe(z.array(z.string().min(16).max(512)).min(1).max(2)), expected: 'one or two secrets of at least 16 characters, comma-separated', description: 'Shared secrets of the billing webhook (`POST /webhooks/billing`, HMAC-SHA256). Two are accepted at once while the billing system rotates; the first signs outbound events. Unset: the webhook answers 503.', secret: true },
  { env: 'RACKSMITH_BILLING_TOLERANCE', key: 'billing.tolerance', schema: int(10, 3600), default: 300, expected: 'seconds, an integer from 10 to 3600', description: 'How far a webhook signature\'s timestamp may be from now before it is refused as stale (401).' },
  { env: 'RACKSMITH_BILLING_URL', key: 'billing.url', schema: z.string().url().refine((u) => isHttpsOrLoopback(u)), expected: 'an https:// URL (http:// only to a loopback address)', description: 'Where order events (provisioned, failed, backordered, suspended, terminated) are sent, signed like the webhook. Unset: they wait in the outbox (`GET /api/v1/billing/outbox`).' },
  { env: 'RACKSMITH_BILLING_PLANS', key: 'billing.plans', schema: z.string(), default: 'inventory/plans.yaml', expected: 'a YAML file of billing plans, or "" for none', description: 'Plans loaded into the database on every start of roles all and api (relative paths from the racksmith folder); plans can also be set with `PUT /api/v1/billing/plans/{code}`.', allowEmpty: true },
  { env: 'RACKSMITH_BILLING_CONSOLE_TTL', key: 'billing.consoleTtl', schema: int(300, 90 * 86400), default: 7 * 86400, expected: 'seconds, an integer from 300 to 7776000', description: 'How long the IPKVM access handed out with a newly provisioned dedicated server lasts.' },
  { env: 'RACKSMITH_CUSTOMER_RATE_LIMIT', key: 'customer.rateLimit', schema: int(1, 100_000), default: 600, expected: 'requests per minute, an integer from 1 to 100000', description: 'Requests per minute one customer may make to the customer routes (/api/v1/my), all their tokens together, per process; more is a 429 `rate_limited` naming the limit, with Retry-After.' },
  { env: 'RACKSMITH_CUSTOMER_POWER_COOLDOWN', key: 'customer.powerCooldown', schema: int(0, 3600), default: 30, expected: 'seconds, an integer from 0 to 3600', description: 'Seconds after a customer power action before the next one on the same machine (a 409 `power_cooldown` with Retry-After until then).' },
  { env: 'RACKSMITH_CUSTOMER_SESSION_TTL', key: 'customer.sessionTtl', schema: int(300, 30 * 86400), default: 12 * 3600, expected: 'seconds, an integer from 300 to 2592000', description: 'How long the session a one-time login link opens lasts.' },
  { env: 'RACKSMITH_CUSTOMER_LOGIN_LINK_TTL', key: 'customer.loginLinkTtl', schema: int(60, 7 * 86400), default: 900, expected: 'seconds, an integer from 60 to 604800', description: 'How long a one-time login link made for a customer stays usable (once).' },
  { env: 'RACKSMITH_VPS_SYNC_INTERVAL', key: 'vps.syncInterval', schema: int(0, 86400), default: 60, expected: 'seconds, an integer from 0 to 86400', description: 'How often every hypervisor is asked which VMs it runs, and VM states corrected (roles all and agent). 0 turns the sync off.' },
  { env: 'RACKSMITH_ROLE', key: 'role', schema: z.enum(ROLES), default: 'all', expected: ROLES.join(', '), description: 'Process role; `serve --role` overrides it.' },
  { env: 'RACKSMITH_SITE', key: 'site', schema: siteCode, expected: 'a site code (lowercase letters, digits, dashes)', description: 'Site an agent serves; `serve --site` overrides it.' },
];

/** The settings file itself is named by an environment variable only. */
export const CONFIG_FILE_ENV = 'RACKSMITH_CONFIG';
/** `RACKSMITH_CREDENTIAL_<NAME>`: a named BMC credential set at start (not a setting; see BmcCredentialsService). */
export const CREDENTIAL_ENV_PREFIX = 'RACKSMITH_CREDENTIAL_';

export interface Config {
  database: { url?: string; connectTimeout: number; poolSize: number; backgroundPoolSize: number; embeddedPort: number };
  dataDir: string;
  http: { host: string; port: number; bodyLimit: number; trustProxy: boolean; shutdownTimeout: number; publicUrl?: string };
  log: { level: (typeof LOG_LEVELS)[number]; format: 'json' | 'pretty' };
  auth: { bootstrapToken?: string };
  secrets: { key?: string };
  inventory: { seed: string };
  jobs: { heartbeatTimeout: number; concurrency: number; events: 'notify' | 'poll' };
  bmc: { ipmitool: string; ipmipower: string; ipmipowerWorkarounds: string; cipherSuite: number; timeout: number; retries: number; redfishCa?: string; redfishVerifyTls: boolean };
  power: { syncInterval: number; syncConcurrency: number };
  console: { slots: string; maxTtl: number; reconcileInterval: number };
  boot: { address?: string; interface?: string; httpPort: number; tftpPort: number; tftpRoot: string; tftpMaxTransfers: number; tftpSender: 'auto' | 'native' | 'js'; tftpSpinUs: number; dhcpMode: 'proxy' | 'authoritative' | 'off'; dhcpBindAddress: string; dhcpPort: number; dhcpProxyPort: number; dhcpBroadcast: string; dhcpClientPort: number; httpUrl?: string; assets: string; installProxy?: string; discovery: boolean };
  billing: { secrets?: string[]; tolerance: number; url?: string; plans: string; consoleTtl: number };
  vps: { syncInterval: number };
  customer: { rateLimit: number; powerCooldown: number; sessionTtl: number; loginLinkTtl: number };
  role: ProcessRole;
  site?: string;
}

/** Injection token for the config object (an abstract class, so it is also the type). */
export abstract class AppConfig {}
export type ConfigOverrides = Partial<Record<string, string | number | boolean | undefined>>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function flatten(obj: unknown, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return out;
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) Object.assign(out, flatten(v, key));
    else out[key] = v;
  }
  return out;
}

function setPath(target: Record<string, any>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = target;
  for (const p of parts.slice(0, -1)) node = node[p] ??= {};
  node[parts[parts.length - 1]] = value;
}

function readFile(path: string, problems: string[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`${CONFIG_FILE_ENV}: cannot read ${path}: ${(err as Error).message}`);
    return {};
  }
  try {
    const doc = parseYaml(text) ?? {};
    if (typeof doc !== 'object' || Array.isArray(doc)) {
      problems.push(`${CONFIG_FILE_ENV}: ${path} must hold a YAML mapping`);
      return {};
    }
    return flatten(doc);
  } catch (err) {
    problems.push(`${CONFIG_FILE_ENV}: ${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    return {};
  }
}

/**
 * Build the config from an environment (process.env by default), the YAML file it names, and
 * overrides from command-line flags (by env name). Throws ConfigError listing every bad key.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: ConfigOverrides = {}): Config {
  const problems: string[] = [];
  const byEnv = new Map(SETTINGS.map((s) => [s.env, s]));
  const byKey = new Map(SETTINGS.map((s) => [s.key, s]));

  for (const name of Object.keys(env)) {
    if (name.startsWith('RACKSMITH_') && name !== CONFIG_FILE_ENV && !name.startsWith(CREDENTIAL_ENV_PREFIX) && !byEnv.has(name)) {
      problems.push(`${name}: unknown setting`);
    }
  }
  const file = env[CONFIG_FILE_ENV] ? readFile(env[CONFIG_FILE_ENV]!, problems) : {};
  for (const key of Object.keys(file)) {
    if (!byKey.has(key)) problems.push(`${key} (in ${env[CONFIG_FILE_ENV]}): unknown setting`);
  }

  const out: Record<string, any> = {};
  for (const s of SETTINGS) {
    let raw: unknown;
    let where = s.env;
    if (overrides[s.env] !== undefined) raw = overrides[s.env];
    else if (env[s.env] !== undefined && (env[s.env] !== '' || s.allowEmpty)) raw = env[s.env];
    else if (file[s.key] !== undefined) {
      raw = file[s.key];
      where = `${s.key} (in ${env[CONFIG_FILE_ENV]})`;
    } else raw = s.default;
    if (raw === undefined) continue;
    const parsed = s.schema.safeParse(raw);
    if (!parsed.success) {
      const shown = s.secret ? '' : `, got ${JSON.stringify(raw)}`;
      problems.push(`${where}: expected ${s.expected}${shown}`);
      continue;
    }
    setPath(out, s.key, parsed.data);
  }
  // The boot interface names the boot address (or must hold it).
  const iface = out.boot?.interface as string | undefined;
  if (iface) {
    const addresses = (networkInterfaces()[iface] ?? []).filter((a) => a.family === 'IPv4').map((a) => a.address);
    if (!addresses.length) problems.push(`RACKSMITH_BOOT_INTERFACE: ${iface} has no IPv4 address here (have: ${Object.keys(networkInterfaces()).join(', ')})`);
    else if (out.boot.address && !addresses.includes(out.boot.address)) problems.push(`RACKSMITH_BOOT_ADDRESS: ${out.boot.address} is not an address of ${iface} (${addresses.join(', ')})`);
    else out.boot.address ??= addresses[0];
  }
  if (problems.length) throw new ConfigError(problems);
  out.auth ??= {};
  out.secrets ??= {};
  return out as Config;
}
