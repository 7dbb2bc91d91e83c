import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { redactUrl } from '../../src/http';
import { installContext, renderInstallTemplate, shippedTemplate, templateFiles, type InstallInputs } from '../../src/modules/templates/install-templates';
import { OS_TEMPLATES } from '../../src/modules/servers/install.schemas';
import { FIRST_BOOT_SCRIPT, FIRST_BOOT_UNIT } from '../../src/modules/templates/first-boot';
import { requirePeer } from '../support/peers';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl engineer@example';
const HASH = `$6$saltsalt$${'a'.repeat(86)}`;
const POST_INSTALL = "#!/bin/sh\necho 'it's ours' > /root/hello\napt-get -y install nginx\n";
const base: InstallInputs = { os: 'x', jobId: '11111111-2222-3333-4444-555555555555', hostname: 'web1.example.com', sshKeys: [KEY], diskLayout: 'single', network: { mode: 'dhcp' }, mirror: 'http://mirror.example/debian', disks: ['/dev/sda', '/dev/sdb'], callbackBase: 'http://10.77.0.1:8080', token: 'tok_123' };
const variants: Record<string, InstallInputs> = {
  'single disk, DHCP, key only': base,
  'local unsigned mirror, the only package source': { ...base, mirror: 'http://10.77.0.1:8091/', mirrorUnsigned: true, mirrorOnly: true },
  'RAID1, static network, password, proxy, post-install script': { ...base, postInstallScript: POST_INSTALL, diskLayout: 'raid1', rootPasswordHash: HASH, network: { mode: 'static', address: '192.0.2.10/24', gateway: '192.0.2.1', dns: ['192.0.2.53', '192.0.2.54'] }, proxy: 'http://proxy.example:3128' },
};

let dir: string;
beforeAll(() => {
  requirePeer('/usr/bin/debconf-set-selections', 'debconf');
  requirePeer('/usr/bin/cloud-init', 'cloud-init');
  dir = mkdtempSync(join(tmpdir(), 'racksmith-tpl-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const render = (os: string, file: string, i: InstallInputs) => renderInstallTemplate(shippedTemplate(os, file)!, installContext({ ...i, os }));
const check = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' });

describe('install templates', () => {
  it('every OS template racksmith offers has its files', () => {
    expect(Object.fromEntries(OS_TEMPLATES.map((os) => [os, templateFiles(os)]))).toEqual({
      'debian-12': ['preseed.cfg'],
      'ubuntu-24.04': ['meta-data', 'user-data'],
      'rocky-9': ['ks.cfg'],
      'alma-9': ['ks.cfg'],
      'freebsd-14': ['installerconfig'],
    });
  });

  describe.each(Object.entries(variants))('%s', (_name, i) => {
    it('Debian preseed passes debconf-set-selections -c and carries the install', () => {
      const out = render('debian-12', 'preseed.cfg', i);
      const f = join(dir, `preseed-${i.diskLayout}.cfg`);
      writeFileSync(f, out);
      const r = check('debconf-set-selections', ['-c', f]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(out).toContain('d-i netcfg/get_hostname string web1');
      expect(out).toContain('d-i netcfg/get_domain string example.com');
      const { host } = new URL(i.mirror);
      expect(out).toContain(`d-i mirror/http/hostname string ${host}`);
      expect(out.includes('allow_unauthenticated boolean true')).toBe(!!i.mirrorUnsigned);
      expect(out.includes('apt-setup/services-select multiselect\n')).toBe(!!i.mirrorOnly);
      expect(out).toContain(`clock-setup/ntp boolean ${i.mirrorOnly ? 'false' : 'true'}`);
      expect(out).toContain(`/api/v1/install-callbacks/${i.jobId}/done?token=tok_123`);
      expect(out).toContain(Buffer.from(`${KEY}\n`).toString('base64'));
      if (i.network.mode === 'static') expect(out).toContain('d-i netcfg/get_netmask string 255.255.255.0');
      expect(out).toContain(i.diskLayout === 'raid1' ? 'partman-auto/method string raid' : 'partman-auto/method string regular');
      expect(out).toContain(i.rootPasswordHash ? `root-password-crypted password ${HASH}` : 'root-password-crypted password !');
      // The late command is valid shell and writes the first-boot report into the installed system.
      const late = out.match(/late_command string ([\s\S]*?)\nd-i finish-install/)![1]!.replace(/\\\n/g, ' ');
      expect(spawnSync('sh', ['-n', '-c', late]).status).toBe(0);
      const written = (path: string) => Buffer.from(out.match(new RegExp(`echo '([A-Za-z0-9+/=]+)' \\| base64 -d > /target${path}`))![1]!, 'base64').toString();
      expect(written('/etc/racksmith/firstboot.env')).toBe(`RACKSMITH_CALLBACK='http://10.77.0.1:8080/api/v1/install-callbacks/${i.jobId}'\nRACKSMITH_TOKEN='tok_123'\n`);
      expect(written('/usr/local/sbin/racksmith-firstboot')).toBe(FIRST_BOOT_SCRIPT);
      expect(spawnSync('sh', ['-n', '-c', FIRST_BOOT_SCRIPT]).status).toBe(0);
      expect(written('/etc/systemd/system/racksmith-firstboot.service')).toBe(FIRST_BOOT_UNIT);
      expect(out).toContain('in-target systemctl enable racksmith-firstboot.service');
      // The post-install script is written (0700) only when the install has one.
      if (i.postInstallScript) expect(written('/etc/racksmith/post-install')).toBe(POST_INSTALL);
      else expect(out).not.toContain('/etc/racksmith/post-install');
    });

    it('Ubuntu autoinstall user-data passes cloud-init schema and holds the install', () => {
      const out = render('ubuntu-24.04', 'user-data', i);
      const f = join(dir, `user-data-${i.diskLayout}`);
      writeFileSync(f, out);
      const r = check('cloud-init', ['schema', '-c', f]);
      expect(r.stdout).toContain('Valid cloud-config');
      expect(r.status).toBe(0);
      const doc = parseYaml(out).autoinstall;
      expect(doc.version).toBe(1);
      expect(doc.identity.hostname).toBe('web1');
      expect(doc.ssh['authorized-keys']).toEqual([KEY]);
      expect(doc.storage.layout.name).toBe(i.diskLayout === 'raid1' ? 'lvm' : 'direct');
      if (i.network.mode === 'static') expect(doc.network.ethernets.primary.addresses).toEqual(['192.0.2.10/24']);
      else expect(doc.network.ethernets.primary.dhcp4).toBe(true);
      expect(parseYaml(render('ubuntu-24.04', 'meta-data', i))).toEqual({ 'instance-id': `racksmith-${i.jobId}`, 'local-hostname': 'web1' });
    });

    it('Rocky and Alma kickstarts name every required command once and nothing is left unrendered', () => {
      for (const os of ['rocky-9', 'alma-9']) {
        const out = render(os, 'ks.cfg', i);
        const commands = out.split('\n').filter((l) => l && !l.startsWith('#') && !l.startsWith('%') && !l.startsWith('@')).map((l) => l.split(' ')[0]);
        for (const c of ['lang', 'keyboard', 'timezone', 'url', 'network', 'rootpw', 'bootloader', 'reboot']) expect(commands.filter((x) => x === c)).toHaveLength(1);
        expect(out).toContain(`sshkey --username=root "${KEY}"`);
        expect(out).toContain(i.diskLayout === 'raid1' ? 'raid / --level=1 --device=md1' : 'autopart');
        expect(out.split('%end').length - 1).toBe(out.split('\n').filter((l) => /^%(packages|pre|post)/.test(l)).length);
      }
    });

    it('FreeBSD installerconfig: its script part passes sh -n', () => {
      const out = render('freebsd-14', 'installerconfig', i);
      const script = out.slice(out.indexOf('#!/bin/sh'));
      const r = spawnSync('sh', ['-n'], { input: script, encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(out).toContain('sysrc hostname="web1.example.com"');
      expect(out).toContain(`export ZFSBOOT_VDEV_TYPE="${i.diskLayout === 'raid1' ? 'mirror' : 'stripe'}"`);
      expect(out).toMatch(/POST \/api\/v1\/install-callbacks\/[-0-9a-f]+\/done\?token=tok_123 HTTP\/1.0/);
    });
  });

  it('an unknown variable is an error, not an empty string', () => {
    expect(() => renderInstallTemplate('hostname {{hostnme}}', installContext(base))).toThrow(/hostnme/);
  });

  it('tokens in callback and template URLs never reach the request log', () => {
    expect(redactUrl('/api/v1/install-callbacks/abc/done?token=secret123&x=1')).toBe('/api/v1/install-callbacks/abc/done?token=[redacted]&x=1');
    expect(redactUrl('/boot/templates/11111111-2222-3333-4444-555555555555/secret123/preseed.cfg')).toBe('/boot/templates/11111111-2222-3333-4444-555555555555/[redacted]/preseed.cfg');
  });
});
