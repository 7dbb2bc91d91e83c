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

export class ProcessRunner {
  run(file: string, args: string[], opts: RunOptions): Promise<RunResult> {
    const max = opts.maxOutput ?? 1 << 20;
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, {
        cwd: opts.cwd,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', ...opts.env },
        uid: opts.uid,
        gid: opts.gid,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
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

  /** Like run, but a non-zero exit, a signal or a timeout is an error. */
  async check(file: string, args: string[], opts: RunOptions): Promise<RunResult> {
    const result = await this.run(file, args, opts);
    if (result.code !== 0 || result.timedOut) throw new ProcessError(file.split('/').pop()!, result);
    return result;
  }
}
