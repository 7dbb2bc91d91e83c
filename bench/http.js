'use strict';
// Authenticated GET requests per second against racksmith, next to a bare Fastify hello world
// measured in the same run (the ratio is the figure; the machine is noisy).
//   node bench/http.js [seconds] [connections]
// Needs PostgreSQL on 127.0.0.1:5432 (TEST_PG_ADMIN_URL to change).
const { join } = require('node:path');
const { Client } = require('pg');
const { cannon, freePort, start, waitFor } = require('./lib');

const ROOT = join(__dirname, '..');
const SECONDS = Number(process.argv[2] || 10);
const CONNECTIONS = Number(process.argv[3] || 50);
const ADMIN = process.env.TEST_PG_ADMIN_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const BOOTSTRAP = 'bench-bootstrap-token-0123456789abcdef';

const load = (url, headers) => cannon(url, { connections: CONNECTIONS, seconds: SECONDS, headers });

async function withDatabase(fn) {
  const name = `racksmith_bench_${process.pid}`;
  const admin = new Client({ connectionString: ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(ADMIN);
  u.pathname = `/${name}`;
  try {
    return await fn(u.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

async function racksmith(url, level) {
  const port = await freePort();
  const proc = start(process.execPath, [join(ROOT, 'bin', 'racksmith.js'), 'serve'], {
    DATABASE_URL: url,
    RACKSMITH_PORT: String(port),
    RACKSMITH_BOOTSTRAP_TOKEN: BOOTSTRAP,
    RACKSMITH_LOG_LEVEL: level,
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(`${base}/health`, 60000);
  return { proc, base };
}

(async () => {
  const line = (label, r, ref) =>
    console.log(`${label.padEnd(44)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms${r.bad ? `  (${r.bad} failed!)` : ''}${ref ? `  ratio ${(r.rps / ref.rps).toFixed(3)}` : ''}`);
  console.log(`${SECONDS} s per target, ${CONNECTIONS} connections, node ${process.version}`);

  const helloPort = await freePort();
  const hello = start(process.execPath, [join(__dirname, 'hello.js')], { PORT: String(helloPort) });
  await waitFor(`http://127.0.0.1:${helloPort}/`, 10000);
  const ref = load(`http://127.0.0.1:${helloPort}/`);
  await hello.stop();
  line('bare Fastify hello world (reference)', ref);

  await withDatabase(async (url) => {
    for (const level of ['info', 'warn']) {
      const { proc, base } = await racksmith(url, level);
      // A real token (hash looked up in PostgreSQL on every request), not the bootstrap one.
      const created = await fetch(`${base}/api/v1/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${BOOTSTRAP}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `bench-${level}`, role: 'readonly' }),
      }).then((r) => r.json());
      const auth = { authorization: `Bearer ${created.token}` };
      line(`racksmith GET /api/v1/whoami (log ${level})`, load(`${base}/api/v1/whoami`, auth), ref);
      line(`racksmith GET /api/v1/audit?limit=20 (log ${level})`, load(`${base}/api/v1/audit?limit=20`, auth), ref);
      await proc.stop();
    }
  });
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
