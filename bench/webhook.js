'use strict';
// Billing webhooks: signed events accepted and durably stored per second by racksmith (signature,
// validation, INSERT into the inbox before the 202; the processor works through them meanwhile),
// next to a plain Fastify endpoint that INSERTs each body as one row, in the same run. Then the
// time from sending `order.paid` to the first task of its install job starting.
//   node bench/webhook.js [seconds] [connections] [paid-orders]
// Needs PostgreSQL on 127.0.0.1:5432 (TEST_PG_ADMIN_URL to change).
const { createHmac } = require('node:crypto');
const { join } = require('node:path');
const autocannon = require('autocannon');
const { benchDatabase, freePort, median, start, waitFor } = require('./lib');

const ROOT = join(__dirname, '..');
const SECONDS = Number(process.argv[2] || 10);
const CONNECTIONS = Number(process.argv[3] || 20);
const PAID = Number(process.argv[4] || 20);
const BOOTSTRAP = 'bench-bootstrap-token-0123456789abcdef';
const SECRET = 'bench-billing-secret-0123456789';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench@example';

let seq = 0;
function signedEvent(type, order) {
  const body = JSON.stringify({ id: `evt-${process.pid}-${++seq}`, type, occurredAt: new Date().toISOString(), order });
  const t = Math.floor(Date.now() / 1000);
  const sig = createHmac('sha256', SECRET).update(`${t}.`).update(body).digest('hex');
  return { body, headers: { 'content-type': 'application/json', 'racksmith-signature': `t=${t},v1=${sig}` } };
}

/** autocannon with a new signed event per request; requests/s, p50/p99 and failures. */
function load(url, path, makeOrder) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections: CONNECTIONS,
        duration: SECONDS,
        requests: [
          {
            method: 'POST',
            path,
            setupRequest: (req) => {
              const { body, headers } = signedEvent('order.paid', makeOrder());
              return { ...req, body, headers };
            },
          },
        ],
      },
      (err, r) => (err ? reject(err) : resolve({ rps: r.requests.average, total: r.requests.total, p50: r.latency.p50, p99: r.latency.p99, bad: r.non2xx + r.errors + r.timeouts })),
    );
  });
}

const api = (base, method, path, body) =>
  fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${BOOTSTRAP}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body) }).then(async (r) => {
    const json = await r.json().catch(() => undefined);
    if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
    return json;
  });

/** `racksmith serve` (role all) on a free port of this database, taking billing webhooks. */
async function racksmith(databaseUrl, env = {}) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = start(process.execPath, [join(ROOT, 'bin', 'racksmith.js'), 'serve'], {
    DATABASE_URL: databaseUrl,
    RACKSMITH_PORT: String(port),
    RACKSMITH_BOOTSTRAP_TOKEN: BOOTSTRAP,
    RACKSMITH_BILLING_SECRETS: SECRET,
    RACKSMITH_INVENTORY_SEED: '',
    RACKSMITH_POWER_SYNC_INTERVAL: '0',
    ...env,
  });
  await waitFor(`${base}/health`, 60000);
  return { base, proc };
}

(async () => {
  const line = (label, r, ref) =>
    console.log(`${label.padEnd(58)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  (${r.total} requests${r.bad ? `, ${r.bad} failed!` : ''})${ref ? `  ratio ${(r.rps / ref.rps).toFixed(3)}` : ''}`);
  console.log(`${SECONDS} s per target, ${CONNECTIONS} connections, node ${process.version}`);
  let n = 0;
  const order = () => ({ id: `ord-${++n}`, customer: `cus-${n % 97}`, plan: 'dedi-e2288g', options: { os: 'debian-12', hostname: `web${n}.example.com`, sshKeys: [KEY] } });

  const refDb = await benchDatabase('webhook_ref');
  try {
    const port = await freePort();
    const ref = start(process.execPath, [join(__dirname, 'webhook-ref.js')], { PORT: String(port), DATABASE_URL: refDb.url });
    for (let i = 0; i < 200 && !ref.output().includes('ready'); i++) await new Promise((r) => setTimeout(r, 50));
    var reference = await load(`http://127.0.0.1:${port}`, '/hook', order);
    await ref.stop();
    line('plain Fastify + one INSERT per event (reference)', reference);
  } finally {
    await refDb.drop();
  }

  const db = await benchDatabase('webhook');
  try {
    for (const level of ['info', 'warn']) {
      const { base, proc } = await racksmith(db.url, { RACKSMITH_LOG_LEVEL: level });
      if (level === 'info') await api(base, 'POST', '/api/v1/sites', { code: 'bench', name: 'Bench' });
      const before = Date.now();
      const r = await load(base, '/webhooks/billing', order);
      line(`racksmith POST /webhooks/billing, order.paid (log ${level})`, r, reference);
      // The stored events are all processed (backordered: the bench inventory has no server).
      let left;
      for (let i = 0; i < 600; i++) {
        left = (await api(base, 'GET', '/api/v1/billing/events?state=pending&limit=1')).items.length;
        if (!left) break;
        await new Promise((res) => setTimeout(res, 500));
      }
      console.log(`  all ${r.total} events processed ${((Date.now() - before) / 1000).toFixed(1)} s after the load began${left ? ' (NOT all: gave up waiting)' : ''}`);
      await proc.stop();
    }

    // order.paid → the install job's first task, with servers in stock and the fake BMC.
    const { base, proc } = await racksmith(db.url);
    const model = await api(base, 'POST', '/api/v1/hardware-models', { vendor: 'Bench', model: 'Fake', heightU: 1, bmcDriver: 'fake' });
    await api(base, 'PUT', '/api/v1/billing/plans/bench-fake', { kind: 'dedicated', spec: { hardwareModel: 'Bench/Fake' } });
    for (let i = 0; i < PAID; i++) {
      const s = await api(base, 'POST', '/api/v1/devices', { site: 'bench', name: `fake-${i}`, role: 'rented-server', modelId: model.id, bmc: { address: '127.0.0.9' } });
      await api(base, 'POST', `/api/v1/servers/${s.id}/transition`, { to: 'available' });
    }
    const times = [];
    for (let i = 0; i < PAID; i++) {
      const orderId = `ord-latency-${i}`;
      const { body, headers } = signedEvent('order.paid', { id: orderId, customer: 'cus-latency', plan: 'bench-fake', options: { sshKeys: [KEY] } });
      const sent = Date.now();
      const res = await fetch(`${base}/webhooks/billing`, { method: 'POST', headers, body });
      if (res.status !== 202) throw new Error(`webhook answered ${res.status}`);
      for (let k = 0; k < 2000; k++) {
        const o = await api(base, 'GET', `/api/v1/billing/orders/${orderId}`).catch(() => null);
        if (o?.jobId) {
          const job = await api(base, 'GET', `/api/v1/jobs/${o.jobId}`);
          if (job.tasks[0].startedAt) {
            times.push(new Date(job.tasks[0].startedAt).getTime() - sent);
            break;
          }
        }
        await new Promise((res) => setTimeout(res, 5));
      }
    }
    await proc.stop();
    times.sort((a, b) => a - b);
    console.log(`order.paid -> first task of its job started: median ${median(times)} ms, max ${times[times.length - 1]} ms (${times.length} of ${PAID} orders, one at a time)`);
  } finally {
    await db.drop();
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
