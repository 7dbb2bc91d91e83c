'use strict';
// Time from `npm start` to /health 200, on a fresh and on an existing data directory (embedded
// PostgreSQL). Also `racksmith serve` alone (no build step) for comparison.
//   node bench/startup.js [runs]
const { mkdtempSync, chmodSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { freePort, start, waitFor, median } = require('./lib');

const ROOT = join(__dirname, '..');
const RUNS = Number(process.argv[2] || 5);

async function once(cmd, args, dataDir) {
  const [port, pgPort] = [await freePort(), await freePort()];
  const t0 = process.hrtime.bigint();
  const proc = start(cmd, args, { RACKSMITH_DATA_DIR: dataDir, RACKSMITH_PORT: String(port), RACKSMITH_EMBEDDED_PG_PORT: String(pgPort), RACKSMITH_LOG_LEVEL: 'warn' }, { cwd: ROOT });
  try {
    await waitFor(`http://127.0.0.1:${port}/health`, 120000);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  } finally {
    const code = await proc.stop('SIGTERM');
    if (code !== 0 && code !== null) console.error(proc.output());
  }
}

async function series(label, cmd, args) {
  const fresh = [];
  const existing = [];
  for (let i = 0; i < RUNS; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'racksmith-bench-'));
    chmodSync(dir, 0o755);
    try {
      fresh.push(await once(cmd, args, dir));
      existing.push(await once(cmd, args, dir));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const fmt = (xs) => `median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`;
  console.log(`${label} fresh data dir:    ${fmt(fresh)}`);
  console.log(`${label} existing data dir: ${fmt(existing)}`);
}

(async () => {
  console.log(`${RUNS} runs each; node ${process.version}`);
  await series('npm start          ', 'npm', ['start', '--silent']);
  await series('racksmith serve    ', process.execPath, [join(ROOT, 'bin', 'racksmith.js'), 'serve']);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
