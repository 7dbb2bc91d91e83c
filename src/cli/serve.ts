import type { Runtime } from '../runtime';
import { createHttpApp } from '../http';
import { TokenService } from '../modules/auth/token.service';
import { InventoryImportService } from '../modules/inventory/inventory-import.service';
import { SitesService } from '../modules/inventory/sites.service';
import { BmcCredentialsService } from '../modules/inventory/bmc-credentials.service';
import { PACKAGE_ROOT, seedInventory } from './inventory';
import { BillingProcessor } from '../modules/billing/billing-processor.service';
import { PlansService } from '../modules/billing/plans.service';
import { JobRunner } from '../jobs/job-runner';
import { JobRepository } from '../jobs/job.repository';
import { JobRegistry } from '../jobs/job-registry';
import { JobQueue } from '../jobs/job-queue';
import { HealthService } from '../modules/health/health.service';
import { VpsSync } from '../modules/vps/vps-sync.service';
import { PowerSync } from '../modules/power/power-sync.service';
import { ConsoleReconciler } from '../modules/console/console-reconciler.service';
import { startBootServices } from '../modules/boot/boot-start';

/**
 * `racksmith serve`: the HTTP API (roles all and api); later issues add the agent parts
 * (boot services, BMC sync, workers). Returns once listening; `stop()` drains and closes.
 */
export async function serve(rt: Runtime, out: NodeJS.WritableStream = process.stdout): Promise<{ url: string; stop: (reason: string) => Promise<void> }> {
  const app = await createHttpApp(rt);
  await app.init();

  const initial = await app.get(TokenService).ensureInitialAdmin();
  if (initial) {
    out.write(
      `\n  First start on an empty database: created an admin API token.\n` +
        `  It is shown this once and stored only as a hash:\n\n    ${initial.token}\n\n` +
        `  Use it as "Authorization: Bearer <token>"; create more with "racksmith token create".\n\n`,
    );
    rt.log.warn({ tokenId: initial.id }, 'created the initial admin token (printed on stdout once)');
  }

  // Named BMC credentials from RACKSMITH_CREDENTIAL_<NAME>, before the inventory that names them.
  const fromEnv = await app.get(BmcCredentialsService).loadFromEnv(process.env);
  if (fromEnv.length) rt.log.info({ credentials: fromEnv }, 'BMC credentials set from the environment');
  await seedInventory(app.get(InventoryImportService), async () => (await app.get(SitesService).list()).length > 0, rt.config.inventory.seed, rt.log);

  // Roles all and api take the billing system's events: plans from the file, then the inbox,
  // backorders and the outbox are worked through in the background.
  let billing: BillingProcessor | undefined;
  if (rt.config.role !== 'agent') {
    if (rt.config.billing.plans) {
      const loaded = await app.get(PlansService).load(rt.config.billing.plans, PACKAGE_ROOT);
      rt.log.info({ plans: loaded, file: rt.config.billing.plans }, 'billing plans loaded');
    }
    const processor = app.get(BillingProcessor);
    // Timers started inside db.background keep its pool for every tick.
    await rt.db.background(async () => processor.start());
    billing = processor;
  }

  // Roles all and agent run jobs (an agent only its site's); the api role only enqueues them.
  let runner: JobRunner | undefined;
  if (rt.config.role !== 'api') {
    const sites = app.get(SitesService);
    runner = new JobRunner(rt.db, app.get(JobRepository), app.get(JobRegistry), app.get(JobQueue), rt.log, {
      siteCodes: rt.config.role === 'agent' && rt.config.site ? [rt.config.site] : undefined,
      allSiteCodes: async () => (await sites.list()).map((s) => s.code),
      staleAfterSeconds: rt.config.jobs.heartbeatTimeout,
      concurrency: rt.config.jobs.concurrency,
      heartbeatMs: Math.min(2000, (rt.config.jobs.heartbeatTimeout * 1000) / 4),
    });
    const started = runner;
    await rt.db.background(() => started.start());
    const worker = runner;
    app.get(HealthService).register({ name: 'jobs', critical: false, run: async () => ({ status: 'ok', detail: `worker ${worker.workerId}` }) });
    // The BMCs of this agent's site (or all of them): power-state sync and grant revocation.
    const siteIds = rt.config.role === 'agent' && rt.config.site ? [(await sites.resolve(rt.config.site)).id] : undefined;
    await rt.db.background(async () => {
      app.get(PowerSync).start(siteIds);
      app.get(VpsSync).start(siteIds?.[0]);
      // Grants that ended while racksmith was down are revoked now, then on a schedule.
      await app.get(ConsoleReconciler).start(siteIds);
    });
    // Network boot (off unless a boot address is configured): the boot listener first (DHCP
    // hands out its URL), then TFTP and DHCP; then the site is announced as booting.
    await startBootServices(app, siteIds?.[0] ?? null);
  }

  await app.listen({ host: rt.config.http.host, port: rt.config.http.port });
  const addr = app.getHttpServer().address();
  const port = typeof addr === 'object' && addr ? addr.port : rt.config.http.port;
  const url = `http://${rt.config.http.host.includes(':') ? `[${rt.config.http.host}]` : rt.config.http.host}:${port}`;
  rt.log.info({ url, role: rt.config.role, site: rt.config.site ?? null, docs: `${url}/docs` }, 'racksmith is serving');

  let stopping: Promise<void> | undefined;
  const stop = (reason: string) =>
    (stopping ??= (async () => {
      rt.log.info({ reason }, 'shutting down: draining requests in flight');
      const limit = setTimeout(() => {
        rt.log.error({ seconds: rt.config.http.shutdownTimeout }, 'requests did not finish in time; exiting anyway');
        process.exit(1);
      }, rt.config.http.shutdownTimeout * 1000);
      limit.unref();
      await billing?.stop();
      await runner?.stop();
      await app.close();
      await rt.close();
      clearTimeout(limit);
      rt.log.info('stopped');
    })());
  return { url, stop };
}
