import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import { FIRST_BOOT_SCRIPT, FIRST_BOOT_UNIT, firstBootEnv, firstBootUrl } from './first-boot';

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** The racksmith folder: templates/<os>/ lives there. */
export const TEMPLATES_DIR = join(__dirname, '..', '..', '..', 'templates');

/** What an install template may use. */
export interface InstallContext {
  os: string;
  jobId: string;
  fqdn: string;
  hostname: string;
  domain: string;
  rootPasswordHash: string;
  sshKeys: string[];
  /** The keys as one base64 line: safe inside any shell quoting. */
  sshKeysBase64: string;
  disk: { raid1: boolean; first: string; second: string; firstName: string; secondName: string };
  network: { static: boolean; address?: string; prefix?: number; netmask?: string; gateway?: string; dns: string[]; dnsList: string; dnsCsv: string };
  /** unsigned: accept a Release not signed by the archive key; only: no other package source, no NTP. */
  mirror: { url: string; host: string; path: string; unsigned: boolean; only: boolean };
  proxy: string;
  callbacks: { progress: string; done: string; failed: string; host: string; port: string; donePath: string };
  /**
   * The first-boot report for the installed system, base64-encoded: its env file (callback and
   * token), script and systemd unit (first-boot.ts). A template that uses these makes its
   * installs end `active` only when the installed system reports its first boot.
   */
  firstBoot: { envBase64: string; scriptBase64: string; unitBase64: string; postInstallBase64: string };
}

/** A template that writes the first-boot report uses this part of the context. */
export const FIRST_BOOT_MARK = 'firstBoot.';
/** A template that writes the customer's post-install script (to /etc/racksmith/post-install) uses this. */
export const POST_INSTALL_MARK = 'firstBoot.postInstallBase64';

export interface InstallInputs {
  os: string;
  jobId: string;
  hostname: string;
  rootPasswordHash?: string | null;
  sshKeys: string[];
  diskLayout: 'single' | 'raid1';
  postInstallScript?: string;
  network: { mode: 'dhcp' } | { mode: 'static'; address: string; gateway: string; dns: string[] };
  mirror: string;
  mirrorUnsigned?: boolean;
  mirrorOnly?: boolean;
  proxy?: string;
  disks: string[];
  callbackBase: string;
  token: string;
}

const netmask = (bits: number) => {
  const m = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 255).join('.');
};

export function installContext(i: InstallInputs): InstallContext {
  const [host, ...rest] = i.hostname.split('.');
  const mirror = new URL(i.mirror);
  const disks = i.disks.length ? i.disks : ['/dev/sda', '/dev/sdb'];
  const name = (d: string) => d.replace(/^\/dev\//, '');
  const n = i.network;
  const network: InstallContext['network'] =
    n.mode === 'static'
      ? (() => {
          const [address, bits] = n.address.split('/');
          return { static: true, address, prefix: Number(bits), netmask: netmask(Number(bits)), gateway: n.gateway, dns: n.dns, dnsList: n.dns.join(' '), dnsCsv: n.dns.join(',') };
        })()
      : { static: false, dns: [], dnsList: '', dnsCsv: '' };
  const cb = (status: string) => `${i.callbackBase}/api/v1/install-callbacks/${i.jobId}/${status}?token=${i.token}`;
  const base = new URL(i.callbackBase);
  return {
    os: i.os,
    jobId: i.jobId,
    fqdn: i.hostname,
    hostname: host!,
    domain: rest.join('.') || 'localdomain',
    rootPasswordHash: i.rootPasswordHash ?? '',
    sshKeys: i.sshKeys,
    sshKeysBase64: b64(i.sshKeys.map((k) => `${k}\n`).join('')),
    disk: { raid1: i.diskLayout === 'raid1', first: disks[0]!, second: disks[1] ?? disks[0]!, firstName: name(disks[0]!), secondName: name(disks[1] ?? disks[0]!) },
    network,
    mirror: { url: i.mirror.replace(/\/+$/, ''), host: mirror.host, path: mirror.pathname.replace(/\/+$/, '') || '/', unsigned: i.mirrorUnsigned ?? false, only: i.mirrorOnly ?? false },
    proxy: i.proxy ?? '',
    firstBoot: { envBase64: b64(firstBootEnv(firstBootUrl(i.callbackBase, i.jobId), i.token)), scriptBase64: b64(FIRST_BOOT_SCRIPT), unitBase64: b64(FIRST_BOOT_UNIT), postInstallBase64: i.postInstallScript ? b64(i.postInstallScript) : '' },
    callbacks: { progress: cb('progress'), done: cb('done'), failed: cb('failed'), host: base.hostname, port: base.port || (base.protocol === 'https:' ? '443' : '80'), donePath: new URL(cb('done')).pathname + new URL(cb('done')).search },
  };
}

/**
 * Handlebars, strict (an unknown variable is an error, not an empty string) and without HTML
 * escaping (these are config files). Handlebars runs no code from the template, so engineers'
 * own templates are safe to render.
 */
const engine = Handlebars.create();
const compiled = new Map<string, HandlebarsTemplateDelegate>();

export function renderInstallTemplate(source: string, ctx: InstallContext, key?: string): string {
  let fn = key ? compiled.get(key) : undefined;
  if (!fn) {
    fn = engine.compile(source, { strict: true, noEscape: true });
    if (key) compiled.set(key, fn);
  }
  return fn(ctx);
}

/** The files of an OS's shipped template (preseed.cfg, user-data, …). */
export function templateFiles(os: string): string[] {
  const dir = join(TEMPLATES_DIR, os);
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

export function shippedTemplate(os: string, file: string): string | null {
  if (!templateFiles(os).includes(file)) return null;
  return readFileSync(join(TEMPLATES_DIR, os, file), 'utf8');
}
