import 'reflect-metadata';
import { userInfo } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { NestFactory } from '@nestjs/core';
import { version } from '../package.json';
import { AppModule } from './app.module';
import { ConfigError, loadConfig, ROLES, SETTINGS, type Config, type ConfigOverrides } from './config/config';
import { createLogger } from './common/logger';
import { requestContext } from './common/request-context';
import { ROLE_NAMES, type Role } from './common/roles';
import { DomainError } from './common/errors';
import { migrate } from './database/data-source';
import { openRuntime, type Runtime } from './runtime';
import { serve } from './cli/serve';
import { TokenService, type TokenView } from './modules/auth/token.service';

/** Exit codes: 1 runtime failure, 2 bad configuration or usage. */
class UsageError extends Error {}

function configFor(overrides: ConfigOverrides = {}): Config {
  return loadConfig(process.env, overrides);
}

/** CLI commands log to stderr (stdout is their output) and only warnings unless asked. */
function cliLogger(config: Config) {
  const level = config.log.level === 'info' ? 'warn' : config.log.level;
  return createLogger({ log: { ...config.log, level } }, pino.destination(2));
}

/** Run fn with a database and the app's services, as the CLI actor (audited as "cli:<user>"). */
async function withApp<T>(fn: (rt: Runtime, get: <S>(cls: new (...a: never[]) => S) => S) => Promise<T>): Promise<T> {
  const config = configFor();
  const rt = await openRuntime(config, cliLogger(config));
  const ctx = await NestFactory.createApplicationContext(AppModule.register(rt), { logger: false, abortOnError: false });
  try {
    return await requestContext.run(
      { source: 'cli', actor: { kind: 'cli', name: `cli:${userInfo().username}`, role: 'admin' } },
      () => fn(rt, (cls) => ctx.get(cls)),
    );
  } finally {
    await ctx.close();
    await rt.close();
  }
}

function parseRole(value: string): Role {
  if (!(ROLE_NAMES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${ROLE_NAMES.join(', ')}`);
  return value as Role;
}

function parseDate(value: string): Date {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError('expected an ISO date/time, e.g. 2027-01-31 or 2027-01-31T12:00:00Z');
  return d;
}

function print(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : text());
}

export function buildCli(): Command {
  const program = new Command('racksmith')
    .description('racksmith: network installs, IPKVM grants, VPS and rack inventory for a hosting company')
    .version(version)
    .showHelpAfterError()
    .addHelpText('after', '\nConfiguration comes from the environment (or a YAML file named by RACKSMITH_CONFIG); see `racksmith config`.');

  program
    .command('serve')
    .description('run the service (HTTP API; agent duties for a site). Without DATABASE_URL an embedded PostgreSQL is started in the data directory.')
    .addOption(new Option('--role <role>', 'what this process does').choices(ROLES as unknown as string[]))
    .option('--site <code>', 'the site this process serves (agents)')
    .option('--host <address>', 'HTTP listen address (RACKSMITH_HOST)')
    .option('--port <port>', 'HTTP listen port (RACKSMITH_PORT)')
    .action(async (opts: { role?: string; site?: string; host?: string; port?: string }) => {
      const config = configFor({ RACKSMITH_ROLE: opts.role, RACKSMITH_SITE: opts.site, RACKSMITH_HOST: opts.host, RACKSMITH_PORT: opts.port });
      if (config.role === 'agent' && !config.site) throw new UsageError('an agent serves one site: give --site CODE (or RACKSMITH_SITE)');
      const log = createLogger(config);
      const rt = await openRuntime(config, log);
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
    });

  program
    .command('migrate')
    .description('apply pending database migrations and exit (serve also does this on start)')
    .action(async () => {
      const config = configFor();
      const rt = await openRuntime(config, cliLogger(config));
      try {
        // openRuntime already migrated; a second call reports that nothing is pending.
        const applied = await migrate(rt.db.dataSource, rt.log);
        process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database schema is up to date\n');
      } finally {
        await rt.close();
      }
    });

  const token = program.command('token').description('manage API tokens');
  token
    .command('create')
    .description('create an API token and print it (once)')
    .requiredOption('--name <name>', 'what the token is for')
    .requiredOption('--role <role>', `one of ${ROLE_NAMES.join(', ')}`, parseRole)
    .option('--expires <date>', 'expiry (ISO date/time)', parseDate)
    .option('--json', 'print JSON')
    .action((opts: { name: string; role: Role; expires?: Date; json?: boolean }) =>
      withApp(async (_rt, get) => {
        const t = await get(TokenService).create({ name: opts.name, role: opts.role, expiresAt: opts.expires });
        print(!!opts.json, t, () => `${t.token}\n`);
        if (!opts.json) process.stderr.write(`token ${t.id} (${t.name}, ${t.role}) created; it is shown only this once\n`);
      }),
    );
  token
    .command('list')
    .description('list API tokens (never their secrets)')
    .option('--all', 'include revoked tokens')
    .option('--json', 'print JSON')
    .action((opts: { all?: boolean; json?: boolean }) =>
      withApp(async (_rt, get) => {
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
      }),
    );
  token
    .command('revoke')
    .description('revoke an API token at once')
    .argument('<id>', 'token id')
    .action((id: string) =>
      withApp(async (_rt, get) => {
        if (!/^[0-9a-f-]{36}$/i.test(id)) throw new UsageError('the token id is a UUID (see `racksmith token list`)');
        const t = await get(TokenService).revoke(id);
        process.stdout.write(`revoked ${t.id} (${t.name})\n`);
      }),
    );

  program
    .command('config')
    .description('check the configuration and print the effective settings (secrets hidden)')
    .action(() => {
      const config = configFor();
      const rows = SETTINGS.map((s) => {
        const value = s.key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], config);
        const shown = value === undefined ? '(unset)' : s.secret ? '(set, hidden)' : JSON.stringify(value);
        return `${s.env.padEnd(30)} ${shown}`;
      });
      process.stdout.write(`${rows.join('\n')}\n`);
    });

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`racksmith: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof DomainError) {
      process.stderr.write(`racksmith: ${err.message} (${err.code})\n`);
      process.exit(1);
    }
    throw err;
  }
}
