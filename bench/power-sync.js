'use strict';
// Power-state sync over many simulated BMCs (OpenIPMI's ipmi_sim, one process per BMC, each on a
// loopback address of its own): racksmith's sync through `racksmith serve` (ipmipower reading
// many BMCs from one process, then per-BMC ipmitool at the configured concurrency), next to a
// naive sequential ipmitool loop and a bare ipmipower run over the same BMCs, in the same run.
//   npm run build && node bench/power-sync.js [small=200] [large=1000]
// Needs PostgreSQL on 127.0.0.1:5432 (TEST_PG_ADMIN_URL to change), openipmi, ipmitool and
// freeipmi-tools. The simulated BMCs need ~6 MiB of memory each.
const { spawn, spawnSync } = require('node:child_process');
const { mkdtempSync, mkdirSync, writeFileSync, rmSync, chmodSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { Client } = require('pg');
const { benchDatabase, freePort, start, waitFor } = require('./lib');

const ROOT = join(__dirname, '..');
const SMALL = Number(process.argv[2] || 200);
const LARGE = Number(process.argv[3] || 1000);
const BOOTSTRAP = 'bench-bootstrap-token-0123456789abcdef';
const KEY = 'cd'.repeat(32);
const PASSWORD = 'bench-bmc-pw';
const UDP_PORT = 16230;
const IPMIPOWER = '/usr/sbin/ipmipower';

const hostOf = (i) => `127.0.${10 + Math.floor(i / 250)}.${(i % 250) + 1}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** N ipmi_sim processes; every third one is powered off. */
function startSims(dir, n) {
  writeFileSync(join(dir, 'chassis.sh'), '#!/bin/sh\n# chassis_control <dir> get|set ...\nd="$1"; shift\n[ "$1" = get ] && echo "power:$(cat "$d/power")"\nexit 0\n');
  chmodSync(join(dir, 'chassis.sh'), 0o755);
  writeFileSync(join(dir, 'sim.emu'), 'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n');
  const children = [];
  for (let i = 0; i < n; i++) {
    const d = join(dir, `bmc${i}`);
    mkdirSync(join(d, 'state'), { recursive: true });
    writeFileSync(join(d, 'power'), i % 3 === 2 ? '0\n' : '1\n');
    writeFileSync(
      join(d, 'lan.conf'),
      `name "bench${i}"\nset_working_mc 0x20\n  startlan 1\n    addr ${hostOf(i)} ${UDP_PORT}\n    priv_limit admin\n    allowed_auths_callback none md2 md5 straight\n    allowed_auths_user none md2 md5 straight\n    allowed_auths_operator none md2 md5 straight\n    allowed_auths_admin none md2 md5 straight\n    guid a123456789abcdefa123456789abcdef\n  endlan\n  chassis_control "${join(dir, 'chassis.sh')} ${d}"\n  user 2 true "admin" "${PASSWORD}" admin 10 md5 md2 straight none\n`,
    );
    children.push(spawn('/usr/bin/ipmi_sim', ['-c', join(d, 'lan.conf'), '-f', join(dir, 'sim.emu'), '-s', join(d, 'state'), '-n'], { stdio: 'ignore' }));
  }
  return children;
}

function ipmipower(n) {
  const t0 = performance.now();
  const r = spawnSync(IPMIPOWER, ['-D', 'LAN_2_0', '-I', '3', '-W', 'opensesspriv', '-l', 'USER', '-u', 'admin', '-p', PASSWORD, '-F', '32', '--session-timeout', '4000', '--retransmission-timeout', '1000', '-h', Array.from({ length: n }, (_, i) => `${hostOf(i)}:${UDP_PORT}`).join(','), '--stat'], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const lines = r.stdout.trim().split('\n');
  return { ms: performance.now() - t0, answered: lines.filter((l) => / (on|off)$/.test(l)).length };
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

function inventory(dir, n) {
  rmSync(join(dir, 'inv'), { recursive: true, force: true });
  mkdirSync(join(dir, 'inv', 'sites'), { recursive: true });
  writeFileSync(join(dir, 'inv', 'models.yaml'), 'hardwareModels:\n  - { vendor: Bench, model: IPMI, heightU: 1, bmcDriver: ipmitool }\n');
  const out = ['sites:\n  - code: bench\n    name: Bench\n    devices:'];
  for (let i = 0; i < n; i++) out.push(`      - { name: b${i}, role: rented-server, model: Bench/IPMI, bmc: { address: '${hostOf(i)}:${UDP_PORT}', username: admin } }`);
  writeFileSync(join(dir, 'inv', 'sites', 'bench.yaml'), `${out.join('\n')}\n`);
  return join(dir, 'inv');
}

async function racksmithSync(dir, url, n, env) {
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
  try {
    await waitFor(`http://127.0.0.1:${port}/health`, 60000);
    const runs = [];
    for (let i = 0; i < 2; i++) {
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/power/sync`, { method: 'POST', headers: { authorization: `Bearer ${BOOTSTRAP}` } });
      const body = await res.json();
      runs.push({ ms: performance.now() - t0, ...body });
    }
    return runs;
  } finally {
    await proc.stop();
  }
}

(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-bench-power-'));
  const db = await benchDatabase('power');
  const sims = startSims(dir, LARGE);
  try {
    for (let i = 0; i < 60 && ipmipower(LARGE).answered < LARGE; i++) await sleep(500);
    const ready = ipmipower(LARGE).answered;
    console.log(`${LARGE} simulated BMCs (ipmi_sim) up, ${ready} answering`);
    const row = (label, n, r, extra = '') => console.log(`${label.padEnd(58)} ${String(n).padStart(5)} BMCs  ${(r.ms / 1000).toFixed(2).padStart(7)} s  ${extra}`);

    const naive = naiveLoop(SMALL);
    row('naive loop: one `ipmitool power status` after another', SMALL, naive, `${naive.answered} answered`);
    for (const n of [SMALL, LARGE]) {
      const r = ipmipower(n);
      row('bare ipmipower --stat, one process, fanout 32', n, r, `${r.answered} answered`);
    }
    for (const n of [SMALL, LARGE]) {
      for (const [label, env] of [
        ['racksmith sync, ipmipower (default)', {}],
        ['racksmith sync, ipmitool per BMC, concurrency 32', { RACKSMITH_IPMIPOWER: '' }],
      ]) {
        const runs = await racksmithSync(dir, db.url, n, { RACKSMITH_IPMIPOWER_WORKAROUNDS: 'opensesspriv', ...env });
        for (const [i, r] of runs.entries()) row(`${label}, ${i ? 'second' : 'first'} run`, n, r, `on ${r.on} off ${r.off} unreachable ${r.unreachable} (server-side ${r.ms} ms)`);
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
