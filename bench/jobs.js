'use strict';
// The job engine: latency from enqueue to task start (p50, p99), and no-op jobs per second, next
// to bare graphile-worker (the queue it stands on) measured in the same run, same machine, same
// concurrency. One process runs producer and worker, as `racksmith serve` (role all) does.
//   npm run build && node bench/jobs.js [latencyJobs] [throughputJobs] [concurrency]
// Needs PostgreSQL on 127.0.0.1:5432 (TEST_PG_ADMIN_URL to change).
const { Client } = require('pg');
const pino = require('pino');
const { run, makeWorkerUtils } = require('graphile-worker');
const { loadConfig } = require('../dist/config/config');
const { openRuntime } = require('../dist/runtime');
const { JobRepository } = require('../dist/jobs/job.repository');
const { JobRegistry } = require('../dist/jobs/job-registry');
const { JobQueue, quietLogger } = require('../dist/jobs/job-queue');
const { JobRunner } = require('../dist/jobs/job-runner');
const { JobService } = require('../dist/jobs/job.service');
const { AuditService } = require('../dist/modules/audit/audit.service');
const { AuditRepository } = require('../dist/modules/audit/audit.repository');

const LATENCY_JOBS = Number(process.argv[2] || 300);
const THROUGHPUT_JOBS = Number(process.argv[3] || 2000);
const CONCURRENCY = Number(process.argv[4] || 8);
const ADMIN = process.env.TEST_PG_ADMIN_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const log = pino({ level: 'warn' });

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function database(name) {
  const admin = new Client({ connectionString: ADMIN });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(ADMIN);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Latency one job at a time (nothing queued ahead), then throughput with many queued at once. */
async function measure(label, enqueue, started, until) {
  const latencies = [];
  const afterEnqueue = [];
  for (let i = 0; i < LATENCY_JOBS; i++) {
    const t0 = performance.now();
    const id = await enqueue();
    const t1 = performance.now();
    while (!started.has(id)) await sleep(0);
    latencies.push(started.get(id) - t0);
    afterEnqueue.push(Math.max(0, started.get(id) - t1));
  }
  const t0 = performance.now();
  const ids = [];
  for (let i = 0; i < THROUGHPUT_JOBS; i++) ids.push(await enqueue());
  const enqueued = performance.now();
  await until(ids);
  const secs = (performance.now() - t0) / 1000;
  const r = { p50: pct(latencies, 50), p99: pct(latencies, 99), q50: pct(afterEnqueue, 50), q99: pct(afterEnqueue, 99), perSec: THROUGHPUT_JOBS / secs, enqueuePerSec: THROUGHPUT_JOBS / ((enqueued - t0) / 1000) };
  console.log(`${label.padEnd(28)} enqueue→start p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms (from the enqueue's return: p50 ${r.q50.toFixed(1)}, p99 ${r.q99.toFixed(1)}); ${r.perSec.toFixed(0)} no-op jobs/s end to end (enqueue alone ${r.enqueuePerSec.toFixed(0)}/s)`);
  return r;
}

async function bare() {
  const url = await database(`racksmith_bench_gw_${process.pid}`);
  const started = new Map();
  let n = 0;
  const done = new Set();
  const runner = await run({ connectionString: url, concurrency: CONCURRENCY, noHandleSignals: true, pollInterval: 1000, logger: quietLogger(log), taskList: { noop: async (p) => { started.set(p.id, performance.now()); done.add(p.id); } } });
  const utils = await makeWorkerUtils({ connectionString: url, logger: quietLogger(log) });
  const r = await measure('bare graphile-worker', async () => { const id = String(++n); await utils.addJob('noop', { id }); return id; }, started, async (ids) => { while (!ids.every((id) => done.has(id))) await sleep(5); });
  await utils.release();
  await runner.stop();
  return r;
}

async function racksmith() {
  const url = await database(`racksmith_bench_jobs_${process.pid}`);
  const config = loadConfig({ DATABASE_URL: url, RACKSMITH_SECRET_KEY: 'ab'.repeat(32), RACKSMITH_DB_POOL_SIZE: '20' });
  const rt = await openRuntime(config, log);
  const [{ id: siteId }] = await rt.db.dataSource.query("INSERT INTO sites (code, name) VALUES ('bench', 'Bench') RETURNING id");
  const registry = new JobRegistry();
  const started = new Map();
  registry.define({ kind: 'noop', hardware: false, tasks: [{ name: 'noop', run: async (ctx) => { started.set(ctx.jobId, performance.now()); } }] });
  const repo = new JobRepository(rt.db);
  const queue = new JobQueue(url, log);
  await queue.start();
  const service = new JobService(repo, registry, queue, new AuditService(new AuditRepository(rt.db)), rt.db);
  const runner = new JobRunner(rt.db, repo, registry, queue, log, { allSiteCodes: async () => ['bench'], concurrency: CONCURRENCY });
  await runner.start();
  const r = await measure(
    'racksmith job engine',
    async () => (await service.create('noop', { siteId, siteCode: 'bench' }, {})).id,
    started,
    async (ids) => {
      for (;;) {
        const [{ n }] = await rt.db.dataSource.query("SELECT count(*)::int AS n FROM jobs WHERE state = 'succeeded' AND id = ANY($1)", [ids]);
        if (n === ids.length) return;
        await sleep(20);
      }
    },
  );
  await runner.stop();
  await queue.stop();
  await rt.close();
  return r;
}

(async () => {
  console.log(`${LATENCY_JOBS} jobs one at a time for latency, ${THROUGHPUT_JOBS} queued at once for throughput, concurrency ${CONCURRENCY}, node ${process.version}`);
  const g = await bare();
  const r = await racksmith();
  console.log(`ratio racksmith / bare: latency p50 ${(r.p50 / g.p50).toFixed(2)}x, throughput ${(r.perSec / g.perSec).toFixed(2)}x`);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
