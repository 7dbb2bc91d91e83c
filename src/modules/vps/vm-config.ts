import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import { stringify } from 'yaml';

/**
 * What a VPS is made of on its hypervisor: the libvirt domain (rendered from
 * templates/vps/domain.xml; every value XML-escaped) and the cloud-init NoCloud seed (YAML built
 * from data, never from text pasted together).
 */
const DOMAIN_TEMPLATE = join(__dirname, '..', '..', '..', 'templates', 'vps', 'domain.xml');
let domain: Handlebars.TemplateDelegate | undefined;

export interface DomainVars {
  domainType: 'kvm' | 'qemu';
  name: string;
  uuid: string;
  title: string;
  vcpus: number;
  ramMb: number;
  disk: string;
  seed: string;
  mac: string;
  consoleLog: string;
  bridge?: string;
  /** Direct kernel boot (a test image); without it the disk boots. */
  kernel?: string;
  initrd?: string;
  cmdline?: string;
}

export function domainXml(vars: DomainVars): string {
  domain ??= Handlebars.create().compile(readFileSync(DOMAIN_TEMPLATE, 'utf8'), { strict: true, knownHelpersOnly: true, knownHelpers: { if: true } });
  return domain({ bridge: undefined, kernel: undefined, initrd: undefined, cmdline: undefined, ...vars });
}

export interface SeedInput {
  instanceId: string;
  hostname: string;
  sshKeys: string[];
  rootPasswordHash?: string;
  network: { mode: 'dhcp' } | { mode: 'static'; address: string; gateway: string; dns: string[] };
  mac: string;
}

/** user-data, meta-data and network-config (v2) of the NoCloud seed. */
export function seedFiles(s: SeedInput): Record<string, string> {
  const short = s.hostname.split('.')[0]!;
  const userData: Record<string, unknown> = {
    hostname: short,
    fqdn: s.hostname,
    preserve_hostname: false,
    ssh_pwauth: false,
    disable_root: false,
    users: [
      {
        name: 'root',
        lock_passwd: !s.rootPasswordHash,
        ...(s.rootPasswordHash ? { hashed_passwd: s.rootPasswordHash } : {}),
        ssh_authorized_keys: s.sshKeys,
      },
    ],
  };
  const ethernet =
    s.network.mode === 'dhcp'
      ? { dhcp4: true }
      : { dhcp4: false, addresses: [s.network.address], routes: [{ to: 'default', via: s.network.gateway }], nameservers: { addresses: s.network.dns } };
  return {
    'user-data': `#cloud-config\n${stringify(userData, { lineWidth: 0 })}`,
    'meta-data': stringify({ 'instance-id': s.instanceId, 'local-hostname': short }),
    'network-config': stringify({ version: 2, ethernets: { eth0: { match: { macaddress: s.mac }, 'set-name': 'eth0', ...ethernet } } }),
  };
}

/** A stable locally administered MAC for a VM id (52:54:00 is QEMU's prefix). */
export function vmMac(id: string): string {
  const hex = id.replace(/-/g, '').slice(-6);
  return `52:54:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}
