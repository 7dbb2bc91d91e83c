import { FIRST_BOOT_SCRIPT, FIRST_BOOT_UNIT, firstBootEnv } from '../templates/first-boot';

/**
 * The configuration script the deploy ramdisk runs against the freshly written root file system
 * (`sh deploy.sh /mnt`): it writes the install's hostname, SSH keys, root password hash, network
 * and the first-boot phone-home (the current script and unit, so an image built before a change of
 * either still runs it, and the customer's post-install script) into the disk. Every value reaches the script base64-encoded,
 * so nothing a customer typed is ever shell syntax.
 */

export interface DeployConfigInput {
  hostname: string;
  sshKeys: string[];
  rootPasswordHash?: string;
  network: { mode: 'dhcp' } | { mode: 'static'; address: string; gateway: string; dns: string[] };
  /** The NIC the static address goes on (its MAC). */
  mac: string;
  /** Where the first boot reports, and with which token. */
  firstBootUrl: string;
  token: string;
  /** Run once by the first boot (`/etc/racksmith/post-install`). */
  postInstallScript?: string;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

export function deployConfigScript(c: DeployConfigInput): string {
  const short = c.hostname.split('.')[0]!;
  const files: { path: string; mode: string; text: string }[] = [
    { path: '/etc/hostname', mode: '644', text: `${short}\n` },
    { path: '/etc/hosts', mode: '644', text: `127.0.0.1 localhost\n127.0.1.1 ${c.hostname === short ? short : `${c.hostname} ${short}`}\n::1 localhost ip6-localhost ip6-loopback\n` },
    { path: '/etc/racksmith/firstboot.env', mode: '600', text: firstBootEnv(c.firstBootUrl, c.token) },
    { path: '/usr/local/sbin/racksmith-firstboot', mode: '755', text: FIRST_BOOT_SCRIPT },
    { path: '/etc/systemd/system/racksmith-firstboot.service', mode: '644', text: FIRST_BOOT_UNIT },
  ];
  if (c.postInstallScript) files.push({ path: '/etc/racksmith/post-install', mode: '700', text: c.postInstallScript });
  if (c.sshKeys.length) files.push({ path: '/root/.ssh/authorized_keys', mode: '600', text: `${c.sshKeys.join('\n')}\n` });
  if (c.network.mode === 'static') {
    files.push({
      path: '/etc/systemd/network/10-racksmith.network',
      mode: '644',
      text: `[Match]\nMACAddress=${c.mac}\n\n[Network]\nAddress=${c.network.address}\nGateway=${c.network.gateway}\n${c.network.dns.map((d) => `DNS=${d}\n`).join('')}`,
    });
  }
  const lines = [
    '#!/bin/sh',
    '# racksmith: configure a deployed image (run by the deploy ramdisk with the mounted root as $1)',
    'set -e',
    'R="$1"',
    '[ -d "$R/etc" ] || { echo "no root file system at $R"; exit 1; }',
    'put() { mkdir -p "$R$(dirname "$1")"; echo "$3" | base64 -d > "$R$1"; chmod "$2" "$R$1"; }',
    'mkdir -p "$R/root/.ssh" "$R/etc/racksmith"; chmod 700 "$R/root/.ssh" "$R/etc/racksmith"',
    ...files.map((f) => `put ${f.path} ${f.mode} ${b64(f.text)}`),
    'mkdir -p "$R/etc/systemd/system/multi-user.target.wants"',
    'ln -sf /etc/systemd/system/racksmith-firstboot.service "$R/etc/systemd/system/multi-user.target.wants/racksmith-firstboot.service"',
  ];
  if (c.rootPasswordHash) {
    // A SHA-512 crypt hash ([./0-9A-Za-z$] only, checked by the install's schema) into root's shadow line.
    lines.push(`h=$(echo ${b64(c.rootPasswordHash)} | base64 -d)`, 'sed -i "s|^root:[^:]*:|root:$h:|" "$R/etc/shadow"');
  }
  lines.push('echo "racksmith: configured $(cat "$R/etc/hostname")"', '');
  return lines.join('\n');
}
