import 'reflect-metadata';
import { userInfo } from 'node:os';
import pino from 'pino';
import { NestFactory } from '@nestjs/core';
import { AppModule } from '../app.module';
import { loadConfig, type Config, type ConfigOverrides } from '../config/config';
import { createLogger } from '../common/logger';
import { requestContext } from '../common/request-context';
import type { Role } from '../common/roles';
import { migrate } from '../database/data-source';
import { openRuntime, type Runtime } from '../runtime';
import { TokenService, type TokenView } from '../modules/auth/token.service';
import { serve } from './serve';
import { InventoryImportService } from '../modules/inventory/inventory-import.service';
import { BmcCredentialsService } from '../modules/inventory/bmc-credentials.service';
import { loadInventory, writeInventory } from '../modules/inventory/inventory-files';
import { formatReport } from './inventory';
import { InstallService } from '../modules/servers/install.service';
import { installInput } from '../modules/servers/install.schemas';
import { JobRepository } from '../jobs/job.repository';
import { JobStreams } from '../jobs/job-streams.service';
import { lastValueFrom, tap } from 'rxjs';
import { DomainError, ValidationError } from '../common/errors';
import { UsageError } from './usage';

/**
 * What the CLI commands do. Loaded only when a command runs, so `--help` and config errors
 * answer at once instead of after loading Nest, TypeORM and Swagger.
 */

function configFor(overrides: ConfigOverrides = {}): Config {
  return loadConfig(process.env, overrides);
}

/** CLI commands log to stderr (stdout is their output) and only warnings unless asked. */
function cliLogger(config: Config) {
  const level = config.log.level === 'info' ? 'warn' : config.log.level;
  return createLogger({ log: { ...config.log, level } }, pino.destination(2));
}

/** Run fn with a database and the app's services, as the CLI actor (audited as "cli:<user>"). */
export async function withApp<T>(fn: (get: <S>(cls: new (...a: never[]) => S) => S) => Promise<T>): Promise<T> {
  const config = configFor();
  const rt = await openRuntime(config, cliLogger(config));
  const ctx = await NestFactory.createApplicationContext(AppModule.register(rt), { logger: false, abortOnError: false });
  try {
    return await requestContext.run(
      { source: 'cli', actor: { kind: 'cli', name: `cli:${userInfo().username}`, role: 'admin' } },
      () => fn((cls) => ctx.get(cls)),
    );
  } finally {
    await ctx.close();
    await rt.close();
  }
}

export function print(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : text());
}

export async function serveCommand(opts: { role?: string; site?: string; host?: string; port?: string }): Promise<void> {
  const config = configFor({ RACKSMITH_ROLE: opts.role, RACKSMITH_SITE: opts.site, RACKSMITH_HOST: opts.host, RACKSMITH_PORT: opts.port });
  if (config.role === 'agent' && !config.site) throw new UsageError('an agent serves one site: give --site CODE (or RACKSMITH_SITE)');
  const log = createLogger(config);
  const rt: Runtime = await openRuntime(config, log, { adoptEmbedded: true, background: true });
  let server: Awaited<ReturnType<typeof serve>>;
  try {
    server = await serve(rt);
  } catch (err) {
    await rt.close().catch(() => undefined);
    throw err;
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      server.stop(signal).then(
        () => process.exit(0),
        (err) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    });
  }
}

export async function migrateCommand(): Promise<void> {
  const config = configFor();
  const rt = await openRuntime(config, cliLogger(config));
  try {
    // openRuntime already migrated; a second call reports that nothing is pending.
    const applied = await migrate(rt.db.dataSource, rt.log);
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database schema is up to date\n');
  } finally {
    await rt.close();
  }
}

export function tokenCreate(opts: { name: string; role: Role; expires?: Date; json?: boolean }): Promise<void> {
  return withApp(async (get) => {
    const t = await get(TokenService).create({ name: opts.name, role: opts.role, expiresAt: opts.expires });
    print(!!opts.json, t, () => `${t.token}\n`);
    if (!opts.json) process.stderr.write(`token ${t.id} (${t.name}, ${t.role}) created; it is shown only this once\n`);
  });
}

export function tokenList(opts: { all?: boolean; json?: boolean }): Promise<void> {
  return withApp(async (get) => {
    const items: TokenView[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 1000; i++) {
      const page = await get(TokenService).list(500, !!opts.all, cursor);
      items.push(...page.items);
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    print(!!opts.json, items, () =>
      items
        .map((t) => [t.id, t.prefix.padEnd(10), t.role.padEnd(9), t.revokedAt ? 'revoked' : t.expiresAt ? `expires ${t.expiresAt}` : 'active', t.name].join('  '))
        .join('\n') + (items.length ? '\n' : ''),
    );
  });
}

export function tokenRevoke(id: string): Promise<void> {
  if (!/^[0-9a-f-]{36}$/i.test(id)) throw new UsageError('the token id is a UUID (see `racksmith token list`)');
  return withApp(async (get) => {
    const t = await get(TokenService).revoke(id);
    process.stdout.write(`revoked ${t.id} (${t.name})\n`);
  });
}

/** The secret from stdin: the first line (a trailing newline is not part of it). */
async function readSecret(name: string): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write(`secret for ${name} (then Enter and Ctrl-D): `);
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  const secret = text.split(/\r?\n/)[0] ?? '';
  if (!secret) throw new UsageError('no secret on stdin: `printf %s "$SECRET" | racksmith secrets set NAME`');
  return secret;
}

export async function secretsSet(name: string): Promise<void> {
  const secret = await readSecret(name);
  await withApp(async (get) => {
    const { created } = await get(BmcCredentialsService).set(name, secret);
    process.stdout.write(`${created ? 'set' : 'changed'} BMC credential ${name}\n`);
  });
}

export function secretsList(opts: { json?: boolean }): Promise<void> {
  return withApp(async (get) => {
    const list = await get(BmcCredentialsService).list();
    print(!!opts.json, list, () => (list.length ? list.map((c) => `${c.name}\t${c.usedBy} BMC(s)\tchanged ${c.updatedAt}\n`).join('') : 'no BMC credentials\n'));
  });
}

export function secretsDelete(name: string): Promise<void> {
  return withApp(async (get) => {
    await get(BmcCredentialsService).remove(name);
    process.stdout.write(`removed BMC credential ${name}\n`);
  });
}

export function inventoryImport(dir: string, opts: { dryRun?: boolean; json?: boolean }): Promise<void> {
  // Files are read and checked before the database is touched.
  const inv = loadInventory(dir);
  return withApp(async (get) => {
    const report = await get(InventoryImportService).import(inv, { dryRun: opts.dryRun });
    print(!!opts.json, report, () => formatReport(report));
  });
}

export function inventoryExport(dir: string): Promise<void> {
  return withApp(async (get) => {
    const written = writeInventory(dir, await get(InventoryImportService).export());
    process.stdout.write(`${written.map((f) => `wrote ${f}`).join('\n')}\n`);
  });
}

export function install(server: string, opts: { os: string; hostname: string; sshKey?: string[]; rootPasswordHash?: string; raid1?: boolean; queue?: boolean; json?: boolean }): Promise<void> {
  const parsed = installInput.safeParse({
    os: opts.os,
    hostname: opts.hostname,
    sshKeys: opts.sshKey ?? [],
    rootPasswordHash: opts.rootPasswordHash,
    diskLayout: opts.raid1 ? 'raid1' : 'single',
    queue: !!opts.queue,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`${issue.path.join('.') || 'input'}: ${issue.message}`);
  }
  return withApp(async (get) => {
    const job = await get(InstallService).request(server, parsed.data);
    print(!!opts.json, job, () => `install job ${job.id} ${job.waitsFor ? `queued behind ${job.waitsFor}` : 'queued'}; follow it with: racksmith jobs watch ${job.id}\n`);
  });
}

/** Follow a job: a progress bar of its tasks and its log, until it ends (exit 0 only if it succeeded). */
export function jobsWatch(id: string): Promise<void> {
  if (!/^[0-9a-f-]{36}$/i.test(id)) throw new UsageError('the job id is a UUID');
  return withApp(async (get) => {
    const repo = get(JobRepository);
    const total = (await repo.tasks(id)).length;
    if (!total) throw new ValidationError(`job ${id} does not exist`, 'id');
    const done = new Set<number>();
    const tty = process.stdout.isTTY;
    const bar = (name: string) => {
      const width = 20;
      const filled = Math.round((done.size / total) * width);
      return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done.size}/${total} ${name}`;
    };
    let final = '';
    await lastValueFrom(
      get(JobStreams).events(id).pipe(
        tap((e) => {
          if (e.type === 'task') {
            if (e.data.state === 'succeeded') done.add(e.data.seq as number);
            if (e.data.state === 'running' || e.data.state === 'succeeded') process.stdout.write(`${tty ? '\r\x1b[K' : ''}${bar(`${String(e.data.name)} ${String(e.data.state)}`)}${tty ? '' : '\n'}`);
          } else if (e.type === 'log') {
            process.stdout.write(`${tty ? '\r\x1b[K' : ''}${String(e.data.at).slice(11, 19)} ${e.data.level === 'info' ? '' : `${String(e.data.level).toUpperCase()} `}${String(e.data.message)}\n`);
          } else if (e.type === 'job') {
            final = String(e.data.state);
          }
        }),
      ),
      { defaultValue: undefined },
    );
    process.stdout.write(`${tty ? '\r\x1b[K' : ''}${bar(final)}\n`);
    if (final !== 'succeeded') process.exitCode = 1;
  });
}

/** `racksmith billing simulate`: what the billing system would send, signed with RACKSMITH_BILLING_SECRETS. */
export async function billingSimulate(
  kind: string,
  opts: { order?: string; customer: string; plan?: string; os?: string; hostname?: string; sshKey?: string[]; site?: string; eventId?: string; occurredAt?: string; url?: string },
): Promise<void> {
  const config = configFor();
  const { signatureHeader } = await import('../modules/billing/billing-signature');
  const { EVENT_TYPES } = await import('../modules/billing/billing.schemas');
  const type = `order.${kind}`;
  if (!(EVENT_TYPES as readonly string[]).includes(type)) throw new UsageError(`the event is one of paid, suspended, unsuspended, terminated (got ${kind})`);
  const secret = config.billing.secrets?.[0];
  if (!secret) throw new UsageError('RACKSMITH_BILLING_SECRETS is not set: the event could not be signed');
  if (type === 'order.paid' && !opts.plan) throw new UsageError('a paid order names its plan: give --plan CODE (GET /api/v1/billing/plans lists them)');
  if (type !== 'order.paid' && !opts.order) throw new UsageError(`${kind} is about an existing order: give --order ID`);
  const stamp = Date.now().toString(36);
  const options = Object.fromEntries(Object.entries({ os: opts.os, hostname: opts.hostname, sshKeys: opts.sshKey, site: opts.site }).filter(([, v]) => v !== undefined));
  const event = {
    id: opts.eventId ?? `evt-sim-${stamp}-${Math.random().toString(36).slice(2, 8)}`,
    type,
    occurredAt: opts.occurredAt ?? new Date().toISOString(),
    order: { id: opts.order ?? `ord-sim-${stamp}`, customer: opts.customer, ...(opts.plan ? { plan: opts.plan } : {}), ...(type === 'order.paid' ? { options } : {}) },
  };
  const base = (opts.url ?? `http://${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${config.http.port}`).replace(/\/$/, '');
  const body = JSON.stringify(event);
  let res: Response;
  try {
    res = await fetch(`${base}/webhooks/billing`, { method: 'POST', headers: { 'content-type': 'application/json', 'racksmith-signature': signatureHeader(secret, body) }, body });
  } catch (err) {
    throw new DomainError('racksmith_unreachable', `cannot reach racksmith at ${base}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`, 502);
  }
  const answer = await res.text();
  process.stdout.write(`${JSON.stringify({ sent: event, status: res.status, answer: safeJson(answer) }, null, 2)}\n`);
  if (!res.ok) process.exitCode = 1;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
