'use strict';
// Delay from a job's step to the SSE clients watching it: `racksmith serve` with
// RACKSMITH_JOB_EVENTS=poll (every stream reads the job's tables every 300 ms) next to =notify
// (PostgreSQL LISTEN/NOTIFY), in the same run. A job no worker runs is written straight into the
// tables, as a worker writes them: each step is one committed log line; every client's delay is
// the time from that INSERT to the line arriving on its stream.
//   npm run build && node bench/job-events.js [clients=200] [steps=50] [gapMs=100]
// Needs PostgreSQL on 127.0.0.1:5432 (TEST_PG_ADMIN_URL to change).
const http = require('node:http');
const { join } = require('node:path');
const { Client } = require('pg');
const { benchDatabase, freePort, start, waitFor } = require('./lib');

const CLIENTS = Number(process.argv[2] || 200);
const STEPS = Number(process.argv[3] || 50);
const GAP_MS = Number(process.argv[4] || 100);
const BOOTSTRAP = 'bench-bootstrap-token-0123456789abcdef';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

/** One SSE client: calls onLog(message, arrivedAt) for every log event; resolves when connected. */
function watch(port, jobId, onLog) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/api/v1/jobs/${jobId}/events`, headers: { authorization: `Bearer ${BOOTSTRAP}`, accept: 'text/event-stream' }, agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`SSE answered ${res.statusCode}`));
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk) => {
        const at = performance.now();
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (!/^event: log$/m.test(block)) continue;
          const data = /^data: (.+)$/m.exec(block);
          if (data) onLog(JSON.parse(data[1]).message, at);
        }
      });
      resolve(req);
    });
    req.on('error', reject);
  });
}

async function measure(url, mode) {
  const port = await freePort();
  const proc = start(process.execPath, [join(__dirname, '..', 'bin', 'racksmith.js'), 'serve'], {
    DATABASE_URL: url,
    RACKSMITH_PORT: String(port),
    RACKSMITH_BOOTSTRAP_TOKEN: BOOTSTRAP,
    RACKSMITH_LOG_LEVEL: 'warn',
    RACKSMITH_INVENTORY_SEED: '',
    RACKSMITH_POWER_SYNC_INTERVAL: '0',
    RACKSMITH_JOB_EVENTS: mode,
  });
  const db = new Client({ connectionString: url });
  await db.connect();
  const reqs = [];
  try {
    await waitFor(`http://127.0.0.1:${port}/health`, 60000);
    const site = (await db.query("INSERT INTO sites (code, name) VALUES ('ev-' || substr(md5(random()::text), 1, 6), 'Events') RETURNING id")).rows[0].id;
    const job = (await db.query("INSERT INTO jobs (kind, site_id, state, created_by) VALUES ('bench-stream', $1, 'running', 'bench') RETURNING id", [site])).rows[0].id;
    const sent = new Map();
    const delays = [];
    const got = new Map();
    for (let c = 0; c < CLIENTS; c++) {
      reqs.push(
        await watch(port, job, (message, at) => {
          const t0 = sent.get(message);
          if (t0 === undefined) return;
          delays.push(at - t0);
          got.set(message, (got.get(message) ?? 0) + 1);
        }),
      );
    }
    await sleep(1000); // every stream has read the job once
    for (let i = 0; i < STEPS; i++) {
      const message = `step ${i}`;
      sent.set(message, performance.now());
      await db.query("INSERT INTO job_logs (job_id, level, message) VALUES ($1, 'info', $2)", [job, message]);
      await sleep(GAP_MS);
    }
    const until = Date.now() + 10_000;
    while (delays.length < CLIENTS * STEPS && Date.now() < until) await sleep(50);
    await db.query("UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = $1", [job]);
    return { mode, samples: delays.length, expected: CLIENTS * STEPS, p50: pct(delays, 50), p99: pct(delays, 99), max: Math.max(...delays) };
  } finally {
    for (const r of reqs) r.destroy();
    await db.end();
    await proc.stop();
  }
}

(async () => {
  const db = await benchDatabase('events');
  try {
    console.log(`${CLIENTS} SSE clients on one job, ${STEPS} steps ${GAP_MS} ms apart`);
    const rows = [];
    for (const mode of ['poll', 'notify']) {
      const r = await measure(db.url, mode);
      rows.push(r);
      console.log(`${mode.padEnd(7)} delivered ${r.samples}/${r.expected}  p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms  max ${r.max.toFixed(1)} ms`);
    }
    console.log(`notify/poll: p50 ${(rows[1].p50 / rows[0].p50).toFixed(2)}, p99 ${(rows[1].p99 / rows[0].p99).toFixed(2)}`);
  } finally {
    await db.drop();
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
