'use strict';
// Inventory at scale: import of a generated inventory of 2 sites x 200 racks x 40 devices (one
// NIC and one power connection each), a second no-op import, then elevation and utilisation
// queries per second against `racksmith serve` at that size.
//   node bench/inventory.js [racksPerSite] [devicesPerRack] [seconds]
// Needs PostgreSQL on 127.0.0.1:5432 (TEST_PG_ADMIN_URL to change). Run `npm run build` first.
const { execFileSync } = require('node:child_process');
const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { benchDatabase, cannon, freePort, start, waitFor } = require('./lib');

const ROOT = join(__dirname, '..');
const RACKS = Number(process.argv[2] || 200);
const PER_RACK = Number(process.argv[3] || 40);
const SECONDS = Number(process.argv[4] || 10);
const BOOTSTRAP = 'bench-bootstrap-token-0123456789abcdef';
const KEY = 'ab'.repeat(32);

function generate(dir) {
  writeFileSync(join(dir, 'models.yaml'), 'hardwareModels:\n  - { vendor: Bench, model: 1U, heightU: 1, maxDrawW: 300, typicalDrawW: 120, bmcDriver: ipmitool }\n');
  mkdirSync(join(dir, 'sites'));
  let mac = 0;
  for (const [n, code] of ['bench-a', 'bench-b'].entries()) {
    const out = [`sites:\n  - code: ${code}\n    name: Bench ${n}\n    racks:`];
    for (let r = 0; r < RACKS; r++) out.push(`      - { name: R${r}, powerBudgetW: 20000 }`);
    out.push('    powerPanels:\n      - name: P1\n        feeds:');
    for (let r = 0; r < RACKS; r++) out.push(`          - { name: F${r}, rack: R${r}, amperage: 32, pdus: [{ name: pdu-${r} }] }`);
    out.push('    devices:');
    for (let r = 0; r < RACKS; r++) {
      for (let u = 1; u <= PER_RACK; u++) {
        mac++;
        const m = [0x52, 0x54, (mac >> 24) & 255, (mac >> 16) & 255, (mac >> 8) & 255, mac & 255].map((x) => x.toString(16).padStart(2, '0')).join(':');
        out.push(`      - { name: s${r}-${u}, role: rented-server, model: Bench/1U, rack: R${r}, position: ${u}, face: front, serial: SN${n}-${r}-${u}, nics: [{ name: eth0, mac: '${m}', pxe: true }], bmc: { address: 10.${n}.${r % 250}.${u} }, power: [{ pdu: pdu-${r}, allocatedW: 100 }] }`);
      }
    }
    writeFileSync(join(dir, 'sites', `${code}.yaml`), `${out.join('\n')}\n`);
  }
  return 2 * RACKS * PER_RACK;
}

function cli(args, env) {
  const t0 = process.hrtime.bigint();
  const out = execFileSync(process.execPath, [join(ROOT, 'bin', 'racksmith.js'), ...args], { env: { ...process.env, ...env }, maxBuffer: 1 << 26 }).toString();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, out };
}

const load = (url) => cannon(url, { connections: 20, seconds: SECONDS, headers: { authorization: `Bearer ${BOOTSTRAP}` } });

(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-bench-inv-'));
  const devices = generate(dir);
  console.log(`generated 2 sites x ${RACKS} racks x ${PER_RACK} devices = ${devices} devices (+ ${devices} NICs, ${devices} power connections) in ${dir}`);
  const db = await benchDatabase('inv');
  const env = { DATABASE_URL: db.url, RACKSMITH_SECRET_KEY: KEY, RACKSMITH_INVENTORY_SEED: '' };
  try {
    const first = cli(['inventory', 'import', dir, '--json'], env);
    const r1 = JSON.parse(first.out);
    console.log(`first import:  ${(first.ms / 1000).toFixed(1)} s wall (racksmith process included), ${r1.created} created`);
    const second = cli(['inventory', 'import', dir, '--json'], env);
    const r2 = JSON.parse(second.out);
    console.log(`second import: ${(second.ms / 1000).toFixed(1)} s wall, ${r2.created} created, ${r2.updated} updated, ${r2.unchanged} unchanged`);
    const version = cli(['--version'], env);
    console.log(`(a racksmith process that does nothing: ${version.ms.toFixed(0)} ms)`);

    const port = await freePort();
    const proc = start(process.execPath, [join(ROOT, 'bin', 'racksmith.js'), 'serve'], { ...env, RACKSMITH_PORT: String(port), RACKSMITH_BOOTSTRAP_TOKEN: BOOTSTRAP, RACKSMITH_LOG_LEVEL: 'warn' });
    const base = `http://127.0.0.1:${port}/api/v1`;
    await waitFor(`http://127.0.0.1:${port}/health`, 60000);
    const racks = await fetch(`${base}/racks?site=bench-a&limit=1`, { headers: { authorization: `Bearer ${BOOTSTRAP}` } }).then((r) => r.json());
    const rack = racks.items[0].id;
    const line = (label, r) => console.log(`${label.padEnd(48)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms${r.bad ? `  (${r.bad} failed!)` : ''}`);
    line(`GET /racks/{id}/elevation (${PER_RACK} devices)`, load(`${base}/racks/${rack}/elevation`));
    line('GET /racks/{id}/elevation.svg', load(`${base}/racks/${rack}/elevation.svg`));
    line('GET /racks/{id}/utilisation', load(`${base}/racks/${rack}/utilisation`));
    line(`GET /sites/{code}/utilisation (${RACKS} racks)`, load(`${base}/sites/bench-a/utilisation`));
    await proc.stop();
  } finally {
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
