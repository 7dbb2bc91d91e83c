'use strict';
// Load on one `racksmith serve`: N concurrent API power actions (each a real ipmitool run against
// an ipmi_sim BMC) and M install requests (each a job that powers its server off, sets a one-time
// PXE boot and powers it on through ipmi_sim, then waits for its installer), all sent at once,
// while the power-state sync runs every second and the job reaper every second. Reports the
// answers, the power actions' latency, whether every install job reached its installer wait
// with no task failed, and every log line of the process that names a connection timeout or a
// failed reaper or scheduler.
//   npm run build && node bench/load.js [powerActions=200] [installs=100]
//   BENCH_ROOT=<another checkout, built> compares that code in the same run (first).
//   BENCH_POOL=N: both runs with RACKSMITH_DB_POOL_SIZE=N and a 1 s connect timeout (a pool far too
//   small for the load, to see who starves).
// Needs PostgreSQL on 127.0.0.1:5432 (TEST_PG_ADMIN_URL to change), openipmi, ipmitool, freeipmi-tools.
const { spawnSync } = require('node:child_process');
const { mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { Client } = require('pg');
const { benchDatabase, freePort, start, waitFor } = require('./lib');
const { PASSWORD, startSims, inventory } = require('./sims');

const POWER = Number(process.argv[2] || 200);
const INSTALLS = Number(process.argv[3] || 100);
const N = Math.max(POWER, INSTALLS);
const BOOTSTRAP = 'bench-bootstrap-token-0123456789abcdef';
const KEY = 'cd'.repeat(32);
const SSH_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench@example';
const BAD_LINE = /connection timeout|timeout exceeded|connection terminated|reaper failed|sync failed|reconcile failed|too many clients/i;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

async function run(label, root, dir, env) {
  const db = await benchDatabase(`load${label.replace(/\W/g, '')}`);
  const { SecretBox } = require(join(root, 'dist', 'common', 'secret-box'));
  const base = { DATABASE_URL: db.url, RACKSMITH_SECRET_KEY: KEY, RACKSMITH_INVENTORY_SEED: '' };
  const imp = spawnSync(process.execPath, [join(root, 'bin', 'racksmith.js'), 'inventory', 'import', inventory(dir, N), '--json'], { env: { ...process.env, ...base }, encoding: 'utf8' });
  if (imp.status !== 0) throw new Error(`import failed: ${imp.stderr}`);
  const pg = new Client({ connectionString: db.url });
  await pg.connect();
  await pg.query('UPDATE devices SET bmc_password_enc = $1', [new SecretBox(Buffer.from(KEY, 'hex')).seal(PASSWORD)]);
  const ids = (await pg.query("SELECT id FROM devices WHERE role = 'rented-server' ORDER BY name")).rows.map((r) => r.id);
  const port = await freePort();
  const proc = start(process.execPath, [join(root, 'bin', 'racksmith.js'), 'serve'], {
    ...base,
    ...env,
    RACKSMITH_PORT: String(port),
    RACKSMITH_BOOTSTRAP_TOKEN: BOOTSTRAP,
    RACKSMITH_LOG_LEVEL: 'warn',
    RACKSMITH_IPMIPOWER_WORKAROUNDS: 'opensesspriv',
    RACKSMITH_POWER_SYNC_INTERVAL: '1',
    RACKSMITH_JOB_HEARTBEAT_TIMEOUT: '3',
    RACKSMITH_BOOT_ADDRESS: '127.0.0.1',
    RACKSMITH_BOOT_HTTP_PORT: String(await freePort()),
    RACKSMITH_TFTP_PORT: '0',
    RACKSMITH_DHCP_MODE: 'off',
  });
  const api = (method, path, body) =>
    fetch(`http://127.0.0.1:${port}${path}`, { method, headers: { authorization: `Bearer ${BOOTSTRAP}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined }).then(async (r) => ({ status: r.status, json: await r.json().catch(() => null) }));
  try {
    await waitFor(`http://127.0.0.1:${port}/health`, 60000);
    await mapLimit(ids, 16, (id) => api('POST', `/api/v1/servers/${id}/transition`, { to: 'available' }));
    const before = proc.output().length;
    const t0 = performance.now();
    const power = Promise.all(ids.slice(0, POWER).map(async (id, i) => {
      const s = performance.now();
      const r = await api('POST', `/api/v1/servers/${id}/power`, { action: i % 2 ? 'on' : 'off' });
      return { status: r.status, code: r.json?.error?.code, ms: performance.now() - s };
    }));
    const installs = Promise.all(ids.slice(N - INSTALLS).map((id, i) => api('POST', `/api/v1/servers/${id}/install`, { os: 'debian-12', hostname: `load${i}.example.com`, sshKeys: [SSH_KEY] })));
    const [p, ins] = await Promise.all([power, installs]);
    const answeredMs = performance.now() - t0;
    const jobIds = ins.filter((r) => r.status === 202).map((r) => r.json.id ?? r.json.jobId);
    // Every job must reach its wait for the installer with no task failed (bounded).
    const until = Date.now() + 180_000;
    let tasks = [];
    for (;;) {
      tasks = (await pg.query("SELECT t.job_id, t.name, t.state, t.attempts, t.error, j.state AS job_state FROM job_tasks t JOIN jobs j ON j.id = t.job_id WHERE j.kind = 'install'")).rows;
      const waiting = new Set(tasks.filter((t) => t.state === 'waiting' || (t.name.startsWith('wait-for') && t.state === 'running')).map((t) => t.job_id));
      if (waiting.size >= jobIds.length || Date.now() > until || tasks.some((t) => t.job_state === 'failed')) break;
      await sleep(500);
    }
    const reachedMs = performance.now() - t0;
    const waiting = new Set(tasks.filter((t) => t.state === 'waiting' || (t.name.startsWith('wait-for') && t.state === 'running')).map((t) => t.job_id));
    const retried = tasks.filter((t) => t.attempts > 1 && !t.name.startsWith('wait-for'));
    const failedJobs = new Set(tasks.filter((t) => t.job_state === 'failed').map((t) => t.job_id));
    const takeovers = (await pg.query("SELECT count(*)::int AS n FROM job_logs WHERE message LIKE '%stopped answering; resuming it'")).rows[0].n;
    await sleep(3000); // a sync or two more under the waiting jobs
    const lines = proc.output().slice(before).split('\n').filter((l) => BAD_LINE.test(l));
    const ok = p.filter((r) => r.status === 200);
    const codes = {};
    for (const r of p.filter((x) => x.status !== 200)) codes[`${r.status} ${r.code}`] = (codes[`${r.status} ${r.code}`] ?? 0) + 1;
    console.log(`${label}: ${POWER} power actions: ${ok.length} answered 200 ${JSON.stringify(codes)}, p50 ${(pct(p.map((r) => r.ms), 50) / 1000).toFixed(2)} s, p99 ${(pct(p.map((r) => r.ms), 99) / 1000).toFixed(2)} s; all answered in ${(answeredMs / 1000).toFixed(1)} s`);
    console.log(`${label}: ${INSTALLS} installs: ${jobIds.length} accepted, ${waiting.size} reached the installer wait in ${(reachedMs / 1000).toFixed(1)} s, ${failedJobs.size} jobs failed, ${retried.length} task retries (${takeovers} of them takeovers after a missed heartbeat)${retried.length ? ` (${[...new Set(retried.map((t) => t.error))].slice(0, 3).join(' | ')})` : ''}`);
    // A request's failure carries its reqId; the reaper's, a scheduler's or a job's do not.
    const background = lines.filter((l) => !l.includes('"reqId"'));
    console.log(`${label}: log lines naming a connection timeout or a failed reaper/scheduler: ${background.length} from background work, ${lines.length - background.length} from requests`);
    for (const l of background.slice(0, 3)) console.log(`  ${l.slice(0, 240)}`);
    await mapLimit(jobIds, 16, (id) => api('POST', `/api/v1/jobs/${id}/cancel`));
  } finally {
    await pg.end();
    await proc.stop();
    await db.drop();
  }
}

(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-bench-load-'));
  const sims = startSims(dir, N);
  try {
    await sleep(3000);
    const env = process.env.BENCH_POOL ? { RACKSMITH_DB_POOL_SIZE: process.env.BENCH_POOL, RACKSMITH_DB_CONNECT_TIMEOUT: '1' } : {};
    if (process.env.BENCH_ROOT) await run('before', process.env.BENCH_ROOT, dir, env);
    await run('now', join(__dirname, '..'), dir, env);
  } finally {
    for (const c of sims) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
