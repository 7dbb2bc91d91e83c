import { Command, InvalidArgumentError, Option } from 'commander';
import { version } from '../package.json';
import { ConfigError, loadConfig, ROLES, SETTINGS } from './config/config';
import { ROLE_NAMES, type Role } from './common/roles';
import { DomainError } from './common/errors';
import { UsageError } from './cli/usage';

/** The heavy part (Nest, TypeORM) loads only when a command runs. */
const commands = () => import('./cli/commands');

function parseRole(value: string): Role {
  if (!(ROLE_NAMES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${ROLE_NAMES.join(', ')}`);
  return value as Role;
}

function parseDate(value: string): Date {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError('expected an ISO date/time, e.g. 2027-01-31 or 2027-01-31T12:00:00Z');
  return d;
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
    .action(async (opts) => (await commands()).serveCommand(opts));

  program
    .command('migrate')
    .description('apply pending database migrations and exit (serve also does this on start)')
    .action(async () => (await commands()).migrateCommand());

  const token = program.command('token').description('manage API tokens');
  token
    .command('create')
    .description('create an API token and print it (once)')
    .requiredOption('--name <name>', 'what the token is for')
    .requiredOption('--role <role>', `one of ${ROLE_NAMES.join(', ')}`, parseRole)
    .option('--expires <date>', 'expiry (ISO date/time)', parseDate)
    .option('--json', 'print JSON')
    .action(async (opts) => (await commands()).tokenCreate(opts));
  token
    .command('list')
    .description('list API tokens (never their secrets)')
    .option('--all', 'include revoked tokens')
    .option('--json', 'print JSON')
    .action(async (opts) => (await commands()).tokenList(opts));
  token
    .command('revoke')
    .description('revoke an API token at once')
    .argument('<id>', 'token id')
    .action(async (id: string) => (await commands()).tokenRevoke(id));

  const secrets = program.command('secrets').description('named BMC credentials the inventory files name as bmc.passwordRef (stored encrypted, never shown)');
  secrets
    .command('set')
    .description('set a named BMC credential, read from stdin (every BMC that names it gets the new secret)')
    .argument('<name>', 'lowercase letters, digits, dots and dashes')
    .action(async (name: string) => (await commands()).secretsSet(name));
  secrets
    .command('list')
    .description('named BMC credentials and how many BMCs use each')
    .option('--json', 'print JSON')
    .action(async (opts) => (await commands()).secretsList(opts));
  secrets
    .command('delete')
    .description('remove a named BMC credential no BMC names any more')
    .argument('<name>')
    .action(async (name: string) => (await commands()).secretsDelete(name));
  const inventory = program.command('inventory').description('the sites, racks, hardware models and devices as YAML files');
  inventory
    .command('import')
    .description('make the database match the inventory files (creates and updates; deletes nothing); one transaction')
    .argument('<dir>', 'folder of *.yaml (or one file)')
    .option('--dry-run', 'show what would change, change nothing')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, opts) => (await commands()).inventoryImport(dir, opts));
  inventory
    .command('export')
    .description('write the inventory from the database as files (hardware-models.yaml, sites/<code>.yaml)')
    .argument('<dir>', 'folder to write into')
    .action(async (dir: string) => (await commands()).inventoryExport(dir));
  inventory
    .command('schema')
    .description('print the JSON Schema of inventory files')
    .action(async () => {
      const { inventoryJsonSchema } = await import('./modules/inventory/inventory-file.schema');
      process.stdout.write(`${JSON.stringify(inventoryJsonSchema(), null, 2)}\n`);
    });

  program
    .command('install')
    .description('install an OS on a rented server (queues an install job; a worker runs it)')
    .argument('<server>', 'server id')
    .requiredOption('--os <template>', 'debian-12, ubuntu-24.04, rocky-9, alma-9 or freebsd-14')
    .requiredOption('--hostname <name>', 'host name of the installed system')
    .option('--ssh-key <key>', 'an OpenSSH public key for root (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .option('--root-password-hash <hash>', 'a SHA-512 crypt hash ($6$...), e.g. from `openssl passwd -6`')
    .option('--raid1', 'mirror the first two disks')
    .option('--queue', 'if the server is busy, queue behind its job instead of failing')
    .option('--json', 'print the job as JSON')
    .action(async (server: string, opts) => (await commands()).install(server, opts));

  const bootCmd = program.command('boot').description('network boot');
  bootCmd
    .command('wipe-image')
    .description('write the disk-wipe image wipe jobs boot: this host\'s kernel and a busybox initramfs with storage and network drivers (needs busybox-static and linux-image-amd64)')
    .option('--out <dir>', 'where to write vmlinuz and initrd.gz (the manifest\'s wipe entry points at the default)', '/var/lib/racksmith/assets/wipe')
    .action(async (opts: { out: string }) => {
      const { buildWipeImage } = await import('./modules/boot/wipe-image');
      const built = buildWipeImage(opts.out);
      process.stdout.write(`wrote ${built.kernel} and ${built.initrd} (${built.modules.length} modules: ${built.modules.join(' ')})\n`);
    });

  const imagesCmd = program.command('images').description('OS images for the image-deploy path (the fast default for Linux plans)');
  imagesCmd
    .command('build')
    .description('build a disk image from Debian\'s packages (mmdebstrap; boots under BIOS and UEFI): writes <name>.raw.gz and <name>.json into --out')
    .argument('<os>', 'debian-12')
    .option('--out <dir>', 'where to write the image', '/var/lib/racksmith/images')
    .option('--name <name>', 'image name (default: <os>-<yyyymmdd>)')
    .option('--source <file-or-url>', 'an apt source (sources.list file, deb822 file or mirror URL; repeatable; default: this host\'s)', (v: string, all: string[] = []) => [...all, v])
    .option('--include <package>', 'an extra package (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .action(async (os: string, opts: { out: string; name?: string; source?: string[]; include?: string[] }) => {
      const { buildOsImage, IMAGE_OS } = await import('./modules/images/image-build');
      if (!(IMAGE_OS as readonly string[]).includes(os)) throw new UsageError(`no image recipe for ${os}: one of ${IMAGE_OS.join(', ')}`);
      const built = await buildOsImage({ os: os as (typeof IMAGE_OS)[number], outDir: opts.out, name: opts.name, sources: opts.source, include: opts.include, log: (l) => process.stderr.write(`${l}\n`) });
      process.stdout.write(`${JSON.stringify(built, null, 2)}\n`);
    });

  imagesCmd
    .command('deploy-ramdisk')
    .description('write the deploy ramdisk image installs boot: this host\'s kernel and a busybox initramfs that streams an image onto the disk, checks its SHA-256, grows the root and configures it (needs busybox-static, linux-image-amd64, fdisk, e2fsprogs)')
    .option('--out <dir>', 'where to write vmlinuz and initrd.gz (the manifest\'s deploy entry points at the default)', '/var/lib/racksmith/assets/deploy')
    .action(async (opts: { out: string }) => {
      const { buildDeployRamdisk } = await import('./modules/images/deploy-ramdisk');
      const built = await buildDeployRamdisk(opts.out);
      process.stdout.write(`wrote ${built.kernel} and ${built.initrd} (${Math.round(built.bytes / 1024)} KiB, ${built.modules.length} modules)\n`);
    });

  const billingCmd = program.command('billing').description('the billing system\'s side, for engineers and the tour');
  billingCmd
    .command('simulate')
    .description('send a correctly signed billing event to a running racksmith (POST /webhooks/billing) and print its answer')
    .argument('<event>', 'paid, suspended, unsuspended or terminated')
    .option('--order <id>', 'order id (default: a new one for paid)')
    .option('--customer <id>', 'customer id', 'cus-demo')
    .option('--plan <code>', 'plan code (paid)')
    .option('--os <template>', 'debian-12, ubuntu-24.04, rocky-9, alma-9 or freebsd-14 (paid, dedicated)')
    .option('--hostname <name>', 'host name (paid)')
    .option('--ssh-key <key>', 'an OpenSSH public key (repeatable; paid)', (v: string, all: string[] = []) => [...all, v])
    .option('--site <code>', 'preferred site (paid)')
    .option('--event-id <id>', 'event id (default: a new one); the same id and --occurred-at again is a redelivery, answered the same')
    .option('--occurred-at <time>', 'when it happened in billing, ISO 8601 (default: now)')
    .option('--url <url>', 'racksmith\'s base URL (default: http://RACKSMITH_HOST:RACKSMITH_PORT)')
    .action(async (event: string, opts) => (await commands()).billingSimulate(event, opts));

  const vpsCli = () => import('./cli/vps');
  const repeat = (v: string, all: string[] = []) => [...all, v];
  const vps = program.command('vps').description('VMs on the KVM hypervisors (each change is a job: follow it with `racksmith jobs watch`)');
  vps.command('list').description('VMs, newest first').option('--customer <id>').option('--hypervisor <id>').option('--state <state>').option('--json').action(async (opts) => (await vpsCli()).vpsList(opts));
  vps.command('show').argument('<id>', 'VM id').option('--json').action(async (id: string, opts) => (await vpsCli()).vpsShow(id, opts));
  vps
    .command('create')
    .description('place a VM (best-fitting hypervisor) and start its create job')
    .requiredOption('--name <name>', 'VM name: lowercase letters, digits, dashes')
    .requiredOption('--customer <id>')
    .requiredOption('--vcpus <n>')
    .requiredOption('--ram-mb <mb>')
    .requiredOption('--disk-gb <gb>')
    .requiredOption('--image <name>', 'base image (racksmith vps images)')
    .option('--ssh-key <key>', 'an OpenSSH public key for root (repeatable; at least one)', repeat)
    .option('--hostname <fqdn>')
    .option('--site <code>')
    .option('--anti-affinity', 'not on a host that runs another VM of this customer')
    .option('--order <id>', 'the billing order it belongs to')
    .option('--json')
    .action(async (opts) => (await vpsCli()).vpsCreate(opts));
  for (const action of ['start', 'stop', 'reboot', 'suspend', 'resume']) {
    const c = vps.command(action).description(`${action} a VM`).argument('<id>', 'VM id').option('--json');
    if (action === 'stop') c.option('--force', 'pull the plug instead of an ACPI shutdown');
    c.action(async (id: string, opts) => (await vpsCli()).vpsAction(action, id, opts));
  }
  vps.command('resize').description('offline resize of a stopped VM (the disk only grows)').argument('<id>', 'VM id').requiredOption('--vcpus <n>').requiredOption('--ram-mb <mb>').requiredOption('--disk-gb <gb>').option('--json').action(async (id: string, opts) => (await vpsCli()).vpsResize(id, opts));
  vps.command('rebuild').description('make the VM again from its image (or --image) with new SSH keys').argument('<id>', 'VM id').option('--image <name>').option('--ssh-key <key>', 'repeatable; at least one', repeat).option('--json').action(async (id: string, opts) => (await vpsCli()).vpsRebuild(id, opts));
  vps.command('delete').description('undefine the VM, remove its disks, free its capacity').argument('<id>', 'VM id').option('--json').action(async (id: string, opts) => (await vpsCli()).vpsDelete(id, opts));
  vps.command('images').description('base images VMs are made from').option('--json').action(async (opts) => (await vpsCli()).vpsImages(opts));
  vps.command('sync').description('run the VM status sync now (exit 1 if a hypervisor could not be asked)').argument('[hypervisor]', 'one hypervisor id (default: all not down)').option('--json').action(async (h: string | undefined, opts) => (await vpsCli()).vpsSync(h, opts));

  const jobsCmd = program.command('jobs').description('jobs that touch hardware');
  jobsCmd
    .command('watch')
    .description('follow a job: progress bar and live log until it ends (exit 1 unless it succeeded)')
    .argument('<id>', 'job id')
    .action(async (id: string) => (await commands()).jobsWatch(id));

  program
    .command('config')
    .description('check the configuration and print the effective settings (secrets hidden)')
    .action(() => {
      const config = loadConfig(process.env);
      const rows = SETTINGS.map((s) => {
        const value = s.key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], config);
        const shown = value === undefined ? '(unset)' : s.secret ? '(set, hidden)' : JSON.stringify(value);
        return `${s.env.padEnd(30)} ${shown}`;
      });
      process.stdout.write(`${rows.join('\n')}\n`);
    });

  return program;
}

/** Exit codes: 0 done, 1 failed, 2 bad configuration or usage. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError || (err instanceof Error && err.name === 'InventoryFileError')) {
      process.stderr.write(`racksmith: ${err.message}\n`);
      process.exit(2);
    }
    const domain = err instanceof DomainError ? err : (await import('./database/db-errors')).mapDatabaseError(err);
    if (domain) {
      process.stderr.write(`racksmith: ${domain.message} (${domain.code}${domain.field ? `, ${domain.field}` : ''})\n`);
      process.exit(1);
    }
    throw err;
  }
}
