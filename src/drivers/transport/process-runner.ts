import { spawn } from 'node:child_process';

/**
 * The one place racksmith starts programs. Arguments are passed as a list (never through a
 * shell), secrets go through `env`, and every run has a deadline.
 */
export interface RunOptions {
  env?: Record<string, string>;
  cwd?: string;
  uid?: number;
  gid?: number;
  timeoutMs: number;
  /** Bytes kept of each of stdout and stderr; the rest is dropped. */
  maxOutput?: number;
  /** Written to the program's stdin (how secrets reach a program: never on its command line). */
  input?: string;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export class ProcessError extends Error {
  constructor(readonly command: string, readonly result: RunResult) {
    const why = result.timedOut ? 'timed out' : result.signal ? `killed by ${result.signal}` : `exited with ${result.code}`;
    const tail = (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' | ');
    super(`${command} ${why}${tail ? `: ${tail}` : ''}`);
    this.name = 'ProcessError';
  }
}

/** How every program starts: argument list (no shell), a minimal environment plus the caller's, deadline-free. */
function spawnOptions(opts: Pick<RunOptions, 'env' | 'cwd' | 'uid' | 'gid'>) {
  return { cwd: opts.cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', ...opts.env }, uid: opts.uid, gid: opts.gid };
}

export class ProcessRunner {
  run(file: string, args: string[], opts: RunOptions): Promise<RunResult> {
    const max = opts.maxOutput ?? 1 << 20;
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, { ...spawnOptions(opts), stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
      if (opts.input !== undefined) child.stdin!.end(opts.input);
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout!.on('data', (d: Buffer) => { if (stdout.length < max) stdout += d.toString('utf8'); });
      child.stderr!.on('data', (d: Buffer) => { if (stderr.length < max) stderr += d.toString('utf8'); });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, opts.timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr, timedOut });
      });
    });
  }

  /** Starts a program that keeps running; see openProcess. */
  open(file: string, args: string[], opts: Omit<RunOptions, 'timeoutMs' | 'input'>): OpenProcess {
    return openProcess(file, args, opts);
  }

  /** Like run, but a non-zero exit, a signal or a timeout is an error. */
  async check(file: string, args: string[], opts: RunOptions): Promise<RunResult> {
    const result = await this.run(file, args, opts);
    if (result.code !== 0 || result.timedOut) throw new ProcessError(file.split('/').pop()!, result);
    return result;
  }
}

/** A long-lived program whose stdin and stdout are a byte stream (a serial console, say). */
export interface OpenProcess {
  pid: number;
  stdin: NodeJS.WritableStream;
  stdout: NodeJS.ReadableStream;
  /** Resolves with the exit code (or null after a signal) once the program has ended. */
  exited: Promise<{ code: number | null; stderr: string }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has ended. */
  stop(graceMs?: number): Promise<void>;
}

export function openProcess(file: string, args: string[], opts: Omit<RunOptions, 'timeoutMs' | 'input'>): OpenProcess {
  const child = spawn(file, args, { ...spawnOptions(opts), stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  const max = opts.maxOutput ?? 64 * 1024;
  child.stderr!.on('data', (d: Buffer) => { if (stderr.length < max) stderr += d.toString('utf8'); });
  // A program that ends while we write to it is not an error of ours.
  child.stdin!.on('error', () => undefined);
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    child.on('error', (err) => resolve({ code: null, stderr: `${stderr}${err.message}` }));
    child.on('close', (code) => resolve({ code, stderr }));
  });
  return {
    pid: child.pid ?? -1,
    stdin: child.stdin!,
    stdout: child.stdout!,
    exited,
    async stop(graceMs = 2000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
