import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePeer, stopPeer } from './peers';

/** A real OpenSSH server on 127.0.0.1 (LAB.md): its own config, host key and authorized key; stopped by pid. */
export interface Sshd {
  port: number;
  user: string;
  /** The client's private key (authorized) and another one (not). */
  clientKey: string;
  strangerKey: string;
  /** Hex SHA-256 of the host key blob: what the inventory pins. */
  hostKeySha256: string;
  /** Accepted logins so far (from sshd's log). */
  logins(): number;
  log(): string;
  stop(): Promise<void>;
}

/** Hex SHA-256 of an OpenSSH public key line's blob. */
export function hostKeyHash(publicKeyLine: string): string {
  return createHash('sha256').update(Buffer.from(publicKeyLine.trim().split(/\s+/)[1]!, 'base64')).digest('hex');
}

export async function startSshd(port: number): Promise<Sshd> {
  requirePeer('/usr/sbin/sshd', 'openssh-server');
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-sshd-'));
  const key = (name: string) => execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(dir, name)]);
  key('host');
  key('client');
  key('stranger');
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client.pub')), { mode: 0o600 });
  mkdirSync('/run/sshd', { recursive: true });
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'LogLevel VERBOSE',
      'MaxSessions 50',
    ].join('\n') + '\n',
  );
  let log = '';
  const proc: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => (log += d));
  proc.stderr!.on('data', (d: Buffer) => (log += d));
  for (let i = 0; i < 100 && !/Server listening/.test(log); i++) {
    if (proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!/Server listening/.test(log)) {
    proc.kill('SIGKILL');
    throw new Error(`sshd did not start: ${log}`);
  }
  return {
    port,
    user: process.env.USER && process.env.USER !== '' ? process.env.USER : 'root',
    clientKey: readFileSync(join(dir, 'client'), 'utf8'),
    strangerKey: readFileSync(join(dir, 'stranger'), 'utf8'),
    hostKeySha256: hostKeyHash(readFileSync(join(dir, 'host.pub'), 'utf8')),
    logins: () => (log.match(/Accepted publickey/g) ?? []).length,
    log: () => log,
    async stop() {
      await stopPeer(proc, 5000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
