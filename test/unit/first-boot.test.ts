import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deployConfigScript } from '../../src/modules/images/deploy-config';
import { FIRST_BOOT_SCRIPT, FIRST_BOOT_UNIT } from '../../src/modules/templates/first-boot';
import { postInstallScript } from '../../src/modules/servers/install.schemas';

/**
 * The deploy ramdisk's configuration script and the installed system's first boot, run for real
 * with sh against a directory standing in for the disk's root, reporting to a local HTTP server.
 */

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl customer@example';
const HASH = `$6$saltsalt$${'b'.repeat(86)}`;

let dir: string;
let server: Server;
let url: string;
const reports: { body: unknown; raw: string }[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'racksmith-firstboot-'));
  server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      let body: unknown = null;
      try {
        body = JSON.parse(raw);
      } catch {
        res.writeHead(400).end('not JSON');
        reports.push({ body: null, raw });
        return;
      }
      reports.push({ body, raw });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/install-callbacks/job-1`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => (reports.length = 0));

/** Run a shell script (bounded: 20 s), resolving with its exit code and output. */
function sh(script: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-s', ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    p.stdin.end(script);
  });
}

/** A root file system as an image has it: /etc with root's shadow line. */
function fakeRoot(name: string): string {
  const root = join(dir, name);
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'var/log'), { recursive: true });
  writeFileSync(join(root, 'etc/shadow'), 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n');
  return root;
}

describe('deploy configuration and first boot, run with sh', () => {
  it('deploy.sh writes the install into the root, and its first boot runs the post-install script once and reports its exit code and output', async () => {
    const root = fakeRoot('with-script');
    const script = '#!/bin/sh\necho "hello from $(id -un)"\necho \'a "quoted" \\\\ line\'\nprintf "caf\\303\\251\\n"\nexit 3\n';
    const deploy = deployConfigScript({ hostname: 'web1.example.com', sshKeys: [KEY], rootPasswordHash: HASH, network: { mode: 'dhcp' }, mac: '52:54:00:00:00:01', firstBootUrl: url, token: 'tok_abc', postInstallScript: script });
    const d = await sh(deploy, [root]);
    expect(d.out).toContain('racksmith: configured web1');
    expect(d.code).toBe(0);
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('web1\n');
    expect(readFileSync(join(root, 'root/.ssh/authorized_keys'), 'utf8')).toBe(`${KEY}\n`);
    expect(readFileSync(join(root, 'etc/shadow'), 'utf8').split('\n')[0]).toBe(`root:${HASH}:19000:0:99999:7:::`);
    expect(readFileSync(join(root, 'etc/racksmith/post-install'), 'utf8')).toBe(script);
    expect(statSync(join(root, 'etc/racksmith/post-install')).mode & 0o777).toBe(0o700);
    // The current first-boot script and unit, enabled, whatever the image was built with.
    expect(readFileSync(join(root, 'usr/local/sbin/racksmith-firstboot'), 'utf8')).toBe(FIRST_BOOT_SCRIPT);
    expect(readFileSync(join(root, 'etc/systemd/system/racksmith-firstboot.service'), 'utf8')).toBe(FIRST_BOOT_UNIT);
    const wants = join(root, 'etc/systemd/system/multi-user.target.wants/racksmith-firstboot.service');
    expect(lstatSync(wants).isSymbolicLink()).toBe(true);
    expect(readlinkSync(wants)).toBe('/etc/systemd/system/racksmith-firstboot.service');

    const env = { RACKSMITH_ETC: join(root, 'etc/racksmith'), RACKSMITH_POST_LOG: join(root, 'var/log/post-install.log') };
    const first = await sh(readFileSync(join(root, 'usr/local/sbin/racksmith-firstboot'), 'utf8'), [], env);
    expect(first.out).toContain('racksmith: first boot reported');
    expect(first.code).toBe(0);
    expect(reports).toHaveLength(1);
    const body = reports[0]!.body as { token: string; status: string; message: string };
    expect(body.token).toBe('tok_abc');
    expect(body.status).toBe('booted');
    expect(body.message).toMatch(/^first boot of \S+; post-install script exited 3 \(output in .*post-install\.log\): hello from \S+ a quoted {2}line caf ?$/);
    // The full output stays on the machine; the script is kept as .done and never runs again.
    expect(readFileSync(env.RACKSMITH_POST_LOG, 'utf8')).toContain('a "quoted" \\ line');
    expect(existsSync(join(root, 'etc/racksmith/post-install'))).toBe(false);
    expect(readFileSync(join(root, 'etc/racksmith/post-install.done'), 'utf8')).toBe(script);
    expect(existsSync(join(root, 'etc/racksmith/firstboot.env'))).toBe(false);
    const again = await sh(FIRST_BOOT_SCRIPT, [], env);
    expect(again.code).toBe(0);
    expect(reports).toHaveLength(1);
  });

  it('without a post-install script the report says only the first boot', async () => {
    const root = fakeRoot('without-script');
    const d = await sh(deployConfigScript({ hostname: 'db1', sshKeys: [KEY], network: { mode: 'dhcp' }, mac: '52:54:00:00:00:02', firstBootUrl: url, token: 'tok_def' }), [root]);
    expect(d.code).toBe(0);
    expect(existsSync(join(root, 'etc/racksmith/post-install'))).toBe(false);
    const first = await sh(FIRST_BOOT_SCRIPT, [], { RACKSMITH_ETC: join(root, 'etc/racksmith'), RACKSMITH_POST_LOG: join(root, 'var/log/post-install.log') });
    expect(first.code).toBe(0);
    expect((reports[0]!.body as { message: string }).message).toMatch(/^first boot of \S+$/);
    expect(existsSync(join(root, 'var/log/post-install.log'))).toBe(false);
  });

  it('deploy.sh refuses a directory without a root file system and writes nothing', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const d = await sh(deployConfigScript({ hostname: 'x', sshKeys: [], network: { mode: 'dhcp' }, mac: '', firstBootUrl: url, token: 't' }), [empty]);
    expect(d.code).not.toBe(0);
    expect(d.out).toContain('no root file system');
    expect(existsSync(join(empty, 'root'))).toBe(false);
  });

  it('the post-install field: 16 KiB as bytes, no NUL, not empty', () => {
    expect(postInstallScript.safeParse('x'.repeat(16_384)).success).toBe(true);
    // 8,193 two-byte characters are 16,386 bytes.
    expect(postInstallScript.safeParse('é'.repeat(8_193)).error?.issues[0]?.message).toBe('at most 16384 bytes');
    expect(postInstallScript.safeParse('echo a\0b').error?.issues[0]?.message).toBe('no NUL bytes');
    expect(postInstallScript.safeParse('').success).toBe(false);
  });
});
