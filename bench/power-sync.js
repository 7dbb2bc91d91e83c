'use strict';
// Power-state sync over many simulated BMCs (OpenIPMI's ipmi_sim, one process per BMC, each on a
// loopback address of its own): racksmith's sync through `racksmith serve` (ipmipower reading
// many BMCs from one process, then per-BMC ipmitool at the configured concurrency), next to a
// naive sequential ipmitool loop and bare ipmipower runs over the same BMCs (one also with
// racksmith's credentials file and host order), in the same run.
// One BMC of each set is paused (SIGSTOP: it takes the packets and never answers), as a hung BMC
// in a rack would; both racksmith and bare ipmipower wait out its session timeout.
//   npm run build && node bench/power-sync.js [small=200] [large=1000] [rounds=3]
// BENCH_ONLY=n: only that many BMCs; BENCH_NOPAUSE=1: no paused BMC; BENCH_IPMIPOWER=<program>:
// racksmith runs that for ipmipower (a wrapper under strace or time -v).
// Needs PostgreSQL on 127.0.0.1:5432 (TEST_PG_ADMIN_URL to change), openipmi, ipmitool and
// freeipmi-tools. The simulated BMCs need ~6 MiB of memory each.
const { spawnSync } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { Client } = require('pg');
const { benchDatabase, freePort, start, waitFor } = require('./lib');
const { PASSWORD, UDP_PORT, hostOf, startSims, inventory } = require('./sims');

const ROOT = join(__dirname, '..');
const SMALL = Number(process.argv[2] || 200);
const LARGE = Number(process.argv[3] || 1000);
const ROUNDS = Number(process.argv[4] || 3);
const BOOTSTRAP = 'bench-bootstrap-token-0123456789abcdef';
const KEY = 'cd'.repeat(32);
const IPMIPOWER = '/usr/sbin/ipmipower';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Bare ipmipower over n BMCs with racksmith's flags. asRacksmith: also as racksmith names them:
 * the credentials in a --config-file and the hosts in device-name order (b0, b1, b10, b100 …).
 */
function ipmipower(n, dir, asRacksmith = false) {
  let order = Array.from({ length: n }, (_, i) => i);
  let creds = ['-u', 'admin', '-p', PASSWORD];
  if (asRacksmith) {
    order = order.sort((a, b) => (`b${a}` < `b${b}` ? -1 : 1));
    writeFileSync(join(dir, 'freeipmi.conf'), `username admin\npassword ${PASSWORD}\n`, { mode: 0o600 });
    creds = ['--config-file', join(dir, 'freeipmi.conf')];
  }
  const c0 = cpu(process.pid).children;
  const t0 = performance.now();
  const r = spawnSync(IPMIPOWER, [...creds, '-D', 'LAN_2_0', '-I', '3', '-W', 'opensesspriv', '-l', 'USER', '-F', '32', '--session-timeout', '4000', '--retransmission-timeout', '1000', '-h', order.map((i) => `${hostOf(i)}:${UDP_PORT}`).join(','), '--stat'], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const lines = r.stdout.trim().split('\n');
  return { ms: performance.now() - t0, cpu: cpu(process.pid).children - c0, answered: lines.filter((l) => / (on|off)$/.test(l)).length };
}

function naiveLoop(n) {
  const t0 = performance.now();
  let answered = 0;
  for (let i = 0; i < n; i++) {
    const r = spawnSync('ipmitool', ['-I', 'lanplus', '-C', '3', '-H', hostOf(i), '-p', String(UDP_PORT), '-U', 'admin', '-E', '-L', 'USER', '-N', '1', '-R', '1', 'power', 'status'], { env: { ...process.env, IPMI_PASSWORD: PASSWORD }, encoding: 'utf8' });
    if (/Chassis Power is (on|off)/.test(r.stdout)) answered++;
  }
  return { ms: performance.now() - t0, answered };
}

/** racksmith serving n BMCs; sync() is one POST /api/v1/power/sync. */
async function racksmithServe(dir, url, n, env) {
  const { SecretBox } = require('../dist/common/secret-box');
  const box = new SecretBox(Buffer.from(KEY, 'hex'));
  const base = { DATABASE_URL: url, RACKSMITH_SECRET_KEY: KEY, RACKSMITH_INVENTORY_SEED: '' };
  spawnSync(process.execPath, [join(ROOT, 'bin', 'racksmith.js'), 'inventory', 'import', inventory(dir, n), '--json'], { env: { ...process.env, ...base }, encoding: 'utf8' });
  const db = new Client({ connectionString: url });
  await db.connect();
  await db.query('UPDATE devices SET bmc_password_enc = $1 WHERE bmc_password_enc IS NULL', [box.seal(PASSWORD)]);
  await db.query('DELETE FROM bmc_status');
  await db.end();
  const port = await freePort();
  const proc = start(process.execPath, [join(ROOT, 'bin', 'racksmith.js'), 'serve'], { ...base, ...env, RACKSMITH_PORT: String(port), RACKSMITH_BOOTSTRAP_TOKEN: BOOTSTRAP, RACKSMITH_LOG_LEVEL: 'warn', RACKSMITH_POWER_SYNC_INTERVAL: '0', RACKSMITH_CONSOLE_RECONCILE_INTERVAL: '0' });
  await waitFor(`http://127.0.0.1:${port}/health`, 60000);
  return {
    async sync() {
      const c0 = cpu(proc.child.pid);
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/power/sync`, { method: 'POST', headers: { authorization: `Bearer ${BOOTSTRAP}` } });
      const body = await res.json();
      const c1 = cpu(proc.child.pid);
      return { ms: performance.now() - t0, ...body, cpuSelf: c1.self - c0.self, cpuChildren: c1.children - c0.children };
    },
    stop: () => proc.stop(),
  };
}

/** CPU ms of a process itself and of its waited-for children (/proc/<pid>/stat utime+stime, cutime+cstime). */
function cpu(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const tick = 10; // USER_HZ 100
  return { self: (Number(f[11]) + Number(f[12])) * tick, children: (Number(f[13]) + Number(f[14])) * tick };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-bench-power-'));
  const db = await benchDatabase('power');
  const sims = startSims(dir, LARGE);
  try {
    for (let i = 0; i < 60 && ipmipower(LARGE, dir).answered < LARGE; i++) await sleep(500);
    const ready = ipmipower(LARGE, dir).answered;
    console.log(`${LARGE} simulated BMCs (ipmi_sim) up, ${ready} answering`);
    const row = (label, n, r, extra = '') => console.log(`${label.padEnd(58)} ${String(n).padStart(5)} BMCs  ${(r.ms / 1000).toFixed(2).padStart(7)} s  ${extra}`);

    if (process.env.BENCH_NAIVE) {
      const naive = naiveLoop(SMALL);
      row('naive loop: one `ipmitool power status` after another', SMALL, naive, `${naive.answered} answered`);
    }
    // One BMC in the middle of the small set hangs after the first sync has seen it answer (as a
    // BMC in a rack hangs one day): the later syncs keep asking it, and wait out its timeout.
    const paused = Math.floor(SMALL / 2);
    for (const n of process.env.BENCH_ONLY ? [Number(process.env.BENCH_ONLY)] : [SMALL, LARGE]) {
      const rs = await racksmithServe(dir, db.url, n, { RACKSMITH_IPMIPOWER_WORKAROUNDS: 'opensesspriv', ...(process.env.BENCH_IPMIPOWER ? { RACKSMITH_IPMIPOWER: process.env.BENCH_IPMIPOWER } : {}) });
      try {
        const first = await rs.sync();
        row('racksmith sync, first run (writes every row)', n, first, `on ${first.on} off ${first.off} unreachable ${first.unreachable}`);
        if (!process.env.BENCH_NOPAUSE) process.kill(sims[paused].pid, 'SIGSTOP');
        // Alternate bare and racksmith, ROUNDS times each, and compare the medians.
        const bare = [];
        const argv = [];
        const ours = [];
        // The order alternates (and each run waits a second first): the second run of a pair meets
        // BMCs still busy with the first one's sessions.
        for (let i = 0; i < ROUNDS; i++) {
          let b;
          let a;
          let r;
          await sleep(1000);
          if (i % 2) {
            r = await rs.sync();
            await sleep(1000);
            a = ipmipower(n, dir, true);
            await sleep(1000);
            b = ipmipower(n, dir);
          } else {
            b = ipmipower(n, dir);
            await sleep(1000);
            a = ipmipower(n, dir, true);
            await sleep(1000);
            r = await rs.sync();
          }
          bare.push(b.ms);
          argv.push(a.ms);
          ours.push(r.ms);
          row(`  round ${i + 1} (${i % 2 ? 'racksmith first' : 'bare first'}): bare (${b.answered} answered, CPU ${b.cpu} ms) / bare, racksmith's argv (CPU ${a.cpu} ms) / racksmith`, n, { ms: b.ms }, `/ ${(a.ms / 1000).toFixed(2)} s / ${(r.ms / 1000).toFixed(2)} s (on ${r.on} off ${r.off} unreachable ${r.unreachable} skipped ${r.skipped}; server-side ${r.ms} ms, of which at the BMCs ${r.bmcMs} ms; CPU of racksmith ${r.cpuSelf} ms, of its ipmipower ${r.cpuChildren} ms)`);
        }
        console.log(`${n} BMCs: median bare ${(median(bare) / 1000).toFixed(2)} s, bare with racksmith's argv ${(median(argv) / 1000).toFixed(2)} s, racksmith ${(median(ours) / 1000).toFixed(2)} s, ratio ${(median(ours) / median(bare)).toFixed(2)}`);
      } finally {
        process.kill(sims[paused].pid, 'SIGCONT');
        await rs.stop();
      }
    }
  } finally {
    for (const c of sims) c.kill('SIGKILL');
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
