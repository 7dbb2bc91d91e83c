'use strict';
// VPS placement: decisions per second while 10,000 VMs of mixed sizes are placed over 500
// hypervisors (each decision picks the best-fitting host and books it in one transaction), one
// at a time and with several at once, as several API processes would.
//   npm run build && node bench/placement.js [vms] [hypervisors] [concurrency]
// Needs PostgreSQL on 127.0.0.1:5432 (TEST_PG_ADMIN_URL to change).
const pino = require('pino');
const { loadConfig } = require('../dist/config/config');
const { openRuntime } = require('../dist/runtime');
const { VpsRepository } = require('../dist/modules/vps/vps.repository');
const { PlacementService } = require('../dist/modules/vps/placement.service');
const { benchDatabase } = require('./lib');

const VMS = Number(process.argv[2] || 10000);
const HOSTS = Number(process.argv[3] || 500);
const CONCURRENCY = Number(process.argv[4] || 8);
const SECRET_KEY = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';

// A deterministic mix of sizes (vCPU, MB, GB), like a VPS price list.
const SIZES = [[1, 1024, 20], [1, 2048, 40], [2, 4096, 60], [4, 8192, 120], [8, 16384, 200]];
const size = (i) => SIZES[(i * 7919) % SIZES.length];

async function fill(db, hosts) {
  await db.rows("INSERT INTO sites (code, name, timezone, visit_opens, visit_closes) VALUES ('bench', 'Bench', 'UTC', '09:00', '18:00')");
  await db.rows("INSERT INTO hardware_models (vendor, model, height_u, full_depth, max_draw_w, typical_draw_w, disks) VALUES ('Bench', 'HV', 1, true, 500, 200, '[]')");
  await db.rows(
    `INSERT INTO devices (site_id, name, role, model_id, height_u, full_depth)
     SELECT s.id, 'hv-' || g, 'hypervisor', m.id, 1, true FROM sites s, hardware_models m, generate_series(1, $1) g`,
    [hosts],
  );
  // 64 cores x4, 256 GiB, 4 TB each: room for ~10,000 of the mix over 500 hosts (RAM runs out first).
  await db.rows(
    `INSERT INTO hypervisors (device_id, site_id, ssh_host, host_key_sha256, vcpus, ram_mb, storage_gb, cpu_ratio)
     SELECT d.id, d.site_id, d.name || '.bench', repeat('a', 64), 64, 262144, 4000, 4 FROM devices d WHERE d.role = 'hypervisor'`,
  );
}

(async () => {
  const bench = await benchDatabase('placement');
  const config = loadConfig({ DATABASE_URL: bench.url, RACKSMITH_SECRET_KEY: SECRET_KEY, RACKSMITH_DB_POOL_SIZE: String(Math.max(10, CONCURRENCY + 2)) });
  const rt = await openRuntime(config, pino({ level: 'warn' }));
  try {
    await fill(rt.db, HOSTS);
    const placement = new PlacementService(new VpsRepository(rt.db), rt.db);
    const [{ id: siteId }] = await rt.db.rows("SELECT id FROM sites WHERE code = 'bench'");
    let refused = 0;
    let times = [];
    const placeOne = async (i) => {
      const [vcpus, ramMb, diskGb] = size(i);
      const t0 = performance.now();
      try {
        await placement.place({ vcpus, ramMb, diskGb, customer: `cus-${i % 3000}`, antiAffinity: i % 10 === 0, siteIds: [siteId] }, { name: `vm-${i}` });
      } catch (err) {
        if (err.code !== 'no_capacity') throw err;
        refused++;
      }
      times.push(performance.now() - t0);
    };
    const run = async (label, from, to, concurrency) => {
      times = [];
      refused = 0;
      let next = from;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < to) await placeOne(next++);
      }));
      const secs = (performance.now() - t0) / 1000;
      const s = [...times].sort((a, b) => a - b);
      console.log(`${label.padEnd(34)} ${(times.length / secs).toFixed(0).padStart(6)} decisions/s  p50 ${s[Math.floor(s.length / 2)].toFixed(1)} ms  p99 ${s[Math.floor(s.length * 0.99)].toFixed(1)} ms  (${times.length} decisions, ${refused} refused: no capacity)`);
    };
    console.log(`${VMS} VMs over ${HOSTS} hypervisors, node ${process.version}`);
    // The first half one at a time, the second half several at once (on fuller hosts by then).
    const half = Math.floor(VMS / 2);
    await run(`one at a time (VMs 1-${half})`, 0, half, 1);
    await run(`${CONCURRENCY} at once (VMs ${half + 1}-${VMS})`, half, VMS, CONCURRENCY);
    const [check] = await rt.db.rows(
      `SELECT count(*)::int AS over FROM hypervisors h WHERE used_ram_mb > ram_mb OR used_vcpus > vcpus * cpu_ratio
          OR used_ram_mb <> (SELECT coalesce(sum(ram_mb), 0) FROM vms WHERE hypervisor_id = h.device_id)`,
    );
    console.log(`hosts overbooked or out of step with their VMs: ${check.over}`);
  } finally {
    await rt.close();
    await bench.drop();
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
