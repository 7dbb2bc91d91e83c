import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';

export const ROOT = join(__dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'racksmith.js');

function ensureBuilt(): void {
  if (!existsSync(join(ROOT, 'dist', 'main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does it) before the CLI tests');
}

/** The child's environment: the runner's, minus any racksmith settings, plus the given ones. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RACKSMITH_') && k !== 'DATABASE_URL'));
  return { ...base, ...env };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<CliResult> {
  ensureBuilt();
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: childEnv(env), cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`racksmith ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

export interface Served {
  proc: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  /** Send a signal and wait for the exit code (SIGKILL after the timeout). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/** Start `racksmith serve` on a free port and wait until it says it is serving. */
export function startServe(env: Record<string, string>, args: string[] = [], timeoutMs = 60_000): Promise<Served> {
  ensureBuilt();
  const proc = spawn(process.execPath, [BIN, 'serve', ...args], {
    env: childEnv({ RACKSMITH_PORT: '0', ...env }),
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let exited: number | null | undefined;
  const exit = new Promise<number | null>((r) => proc.on('exit', (code) => r((exited = code))));
  proc.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`serve did not start within ${timeoutMs} ms\n${out}\n${err}`));
    }, timeoutMs);
    void exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before serving\n${out}\n${err}`));
    });
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /"url":"(http:[^"]+)".*"msg":"racksmith is serving"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          proc,
          url: m[1],
          stdout: () => out,
          stderr: () => err,
          async stop(signal = 'SIGTERM', limit = 30_000) {
            if (exited !== undefined) return exited;
            proc.kill(signal);
            const kill = setTimeout(() => proc.kill('SIGKILL'), limit);
            const code = await exit;
            clearTimeout(kill);
            return code;
          },
        });
      }
    });
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}
