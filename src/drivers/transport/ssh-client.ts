import type { Duplex } from 'node:stream';
import { Client, type ClientChannel } from 'ssh2';

/**
 * Commands on remote hosts over SSH (the hypervisors): key authentication, the host's key pinned
 * (its SHA-256, as the inventory holds it) and checked before anything is sent, one kept
 * connection per host, every command an argument list quoted for the remote shell, a deadline
 * on each.
 */
export interface SshTarget {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  /** Hex SHA-256 of the host's public key blob (what `ssh-keygen -lf` shows, in hex). */
  hostKeySha256: string;
}

export type SshFailure = 'host_key_mismatch' | 'unreachable' | 'auth_failed' | 'timeout' | 'disconnected';

export class SshError extends Error {
  constructor(
    message: string,
    readonly kind: SshFailure,
  ) {
    super(message);
    this.name = 'SshError';
  }
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** One argument for a POSIX shell: left alone when it is plainly safe, else single-quoted. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

const CONNECT_TIMEOUT_MS = 10_000;
const MAX_OUTPUT = 4 * 1024 * 1024;

interface Kept {
  client: Client;
  ready: Promise<Client>;
}

export class SshConnections {
  private readonly kept = new Map<string, Kept>();

  /** Connections opened so far (a test can tell a kept connection from a new one). */
  opened = 0;

  private key(t: SshTarget): string {
    return `${t.user}@${t.host}:${t.port}#${t.hostKeySha256}`;
  }

  private connect(t: SshTarget): Promise<Client> {
    const key = this.key(t);
    const existing = this.kept.get(key);
    if (existing) return existing.ready;
    const client = new Client();
    let presented: string | undefined;
    const ready = new Promise<Client>((resolve, reject) => {
      client
        .on('ready', () => resolve(client))
        .on('error', (err: Error & { level?: string; code?: string }) => {
          this.kept.delete(key);
          if (presented !== undefined && presented !== t.hostKeySha256) {
            reject(new SshError(`${t.host}:${t.port} presented host key SHA-256 ${presented}, not the pinned ${t.hostKeySha256}: refused (a different machine, or a reinstalled one whose new key was not recorded)`, 'host_key_mismatch'));
          } else if (err.level === 'client-authentication') {
            reject(new SshError(`${t.user}@${t.host}:${t.port} refused the key: ${err.message}`, 'auth_failed'));
          } else if (err.level === 'client-timeout') {
            reject(new SshError(`${t.host}:${t.port} did not answer within ${CONNECT_TIMEOUT_MS / 1000} s`, 'timeout'));
          } else {
            reject(new SshError(`cannot reach ${t.host}:${t.port} over SSH: ${err.message}`, 'unreachable'));
          }
        })
        .on('close', () => this.kept.delete(key));
      try {
        client.connect({
          host: t.host,
        port: t.port,
        username: t.user,
        privateKey: t.privateKey,
        readyTimeout: CONNECT_TIMEOUT_MS,
        keepaliveInterval: 15_000,
        hostHash: 'sha256',
          hostVerifier: (hash: string) => {
            presented = hash;
            return hash === t.hostKeySha256;
          },
        });
      } catch (err) {
        // A key ssh2 cannot read: nothing was sent; the next call tries again (a fixed key).
        queueMicrotask(() => this.kept.delete(key));
        reject(new SshError(`the SSH key for ${t.user}@${t.host}:${t.port} cannot be used: ${(err as Error).message}`, 'auth_failed'));
      }
    });
    this.opened++;
    this.kept.set(key, { client, ready });
    return ready;
  }

  /**
   * Run `argv` on the host (each argument quoted for its shell). Resolves with the exit code and
   * output whatever the code; throws SshError when the host cannot be reached or is not the one
   * pinned, or on the deadline.
   */
  async exec(t: SshTarget, argv: string[], opts: { stdin?: string | Buffer; timeoutMs?: number } = {}): Promise<ExecResult> {
    const client = await this.connect(t);
    const command = argv.map(shellQuote).join(' ');
    const timeoutMs = opts.timeoutMs ?? 60_000;
    return new Promise<ExecResult>((resolve, reject) => {
      client.exec(command, (err: Error | undefined, stream: ClientChannel) => {
        if (err) return reject(new SshError(`${t.host}: ${err.message}`, 'disconnected'));
        let stdout = '';
        let stderr = '';
        const timer = setTimeout(() => {
          stream.close();
          reject(new SshError(`${argv[0]} on ${t.host} did not finish within ${timeoutMs} ms`, 'timeout'));
        }, timeoutMs);
        stream.on('data', (d: Buffer) => {
          if (stdout.length < MAX_OUTPUT) stdout += d.toString();
        });
        stream.stderr.on('data', (d: Buffer) => {
          if (stderr.length < MAX_OUTPUT) stderr += d.toString();
        });
        stream.on('close', (code: number | null) => {
          clearTimeout(timer);
          resolve({ code: code ?? null, stdout, stderr });
        });
        if (opts.stdin !== undefined) stream.end(opts.stdin);
        else stream.end();
      });
    });
  }

  /**
   * Start `argv` on the host with a terminal (a serial console): its output and input as one
   * stream, over the kept connection; `close()` ends it (the remote side gets a hangup).
   */
  async open(t: SshTarget, argv: string[], opts: { cols?: number; rows?: number } = {}): Promise<{ stream: Duplex; close(): Promise<void> }> {
    const client = await this.connect(t);
    const command = argv.map(shellQuote).join(' ');
    return new Promise((resolve, reject) => {
      client.exec(command, { pty: { term: 'vt100', cols: opts.cols ?? 80, rows: opts.rows ?? 24 } }, (err: Error | undefined, stream: ClientChannel) => {
        if (err) return reject(new SshError(`${t.host}: ${err.message}`, 'disconnected'));
        const closed = new Promise<void>((r) => stream.once('close', () => r()));
        resolve({
          stream,
          async close() {
            stream.close();
            await Promise.race([closed, new Promise((r) => setTimeout(r, 2000))]);
          },
        });
      });
    });
  }

  /** Close every kept connection. */
  async close(): Promise<void> {
    for (const { client } of this.kept.values()) client.end();
    this.kept.clear();
  }
}
