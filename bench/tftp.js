'use strict';
// TFTP throughput: racksmith's TFTP server next to tftpd-hpa serving the same files in the same
// run, over loopback: one 64 MiB file at blksize 1468 with curl and with atftp (lock-step), with
// atftp at windowsize 16 (tftpd-hpa has no windowsize and answers lock-step), and 50 clients at
// once. Median of RUNS runs each. racksmith runs as it ships (native sender, 50 µs spin); the
// lock-step rows also show it with the native sender not spinning, with the JavaScript sender, and
// a bare Node.js sender (bench/tftp-floor.js): the floor of Node's own UDP path on this machine.
//   npm run build && node bench/tftp.js [runs=3] [sizeMiB=64] [clients=50]
// Needs tftpd-hpa, atftp and curl (Debian packages).
const { execFile } = require('node:child_process');
const { chmodSync, mkdtempSync, mkdirSync, rmSync, statSync, writeFileSync } = require('node:fs');
const { randomBytes } = require('node:crypto');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { promisify } = require('node:util');
const { start, median, freeUdpPort } = require('./lib');

const run = promisify(execFile);
const RUNS = Number(process.argv[2] || 3);
const SIZE = Number(process.argv[3] || 64) * 1024 * 1024;
const CLIENTS = Number(process.argv[4] || 50);
const SMALL = 8 * 1024 * 1024;

async function timed(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function fetchOne(tool, port, name, out, windowsize) {
  if (tool === 'curl') return run('curl', ['-sS', '--fail', '--tftp-blksize', '1468', '-o', out, `tftp://127.0.0.1:${port}/${name}`]);
  const opts = ['--option', 'blksize 1468', ...(windowsize ? ['--option', `windowsize ${windowsize}`] : [])];
  return run('atftp', [...opts, '-g', '-r', name, '-l', out, '127.0.0.1', String(port)]);
}

(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-bench-tftp-'));
  const root = join(dir, 'root');
  mkdirSync(root);
  // tftpd-hpa drops to the tftp user: the root must be readable by others.
  chmodSync(dir, 0o755);
  chmodSync(root, 0o755);
  writeFileSync(join(root, 'big.bin'), randomBytes(SIZE), { mode: 0o644 });
  writeFileSync(join(root, 'small.bin'), randomBytes(SMALL), { mode: 0o644 });
  const ours = await freeUdpPort();
  const noSpin = await freeUdpPort();
  const js = await freeUdpPort();
  const hpa = await freeUdpPort();
  const floor = await freeUdpPort();
  const servers = [
    start(process.execPath, [join(__dirname, 'tftp-server.js'), root, String(ours), 'native', '50'], {}),
    start(process.execPath, [join(__dirname, 'tftp-server.js'), root, String(noSpin), 'native', '0'], {}),
    start(process.execPath, [join(__dirname, 'tftp-server.js'), root, String(js), 'js'], {}),
    start('/usr/sbin/in.tftpd', ['-L', '-s', root, '-a', `127.0.0.1:${hpa}`], {}),
    start(process.execPath, [join(__dirname, 'tftp-floor.js'), join(root, 'big.bin'), String(floor)], {}),
  ];
  await new Promise((r) => setTimeout(r, 800));
  const mbps = (bytes, ms) => bytes / 1e6 / (ms / 1000);
  const results = [];
  try {
    for (const [label, tool, ws] of [
      ['curl, blksize 1468', 'curl', 0],
      ['atftp, blksize 1468', 'atftp', 0],
      ['atftp, blksize 1468, windowsize 16', 'atftp', 16],
    ]) {
      const row = { label };
      const lockStep = ws ? [] : [['no spin', noSpin], ['js', js], ['node floor', floor]];
      for (const [server, port] of [['racksmith', ours], ['tftpd-hpa', hpa], ...lockStep]) {
        const times = [];
        for (let i = 0; i < RUNS; i++) {
          const out = join(dir, `out-${server}-${i}`);
          times.push(await timed(() => fetchOne(tool, port, 'big.bin', out, ws)));
          if (statSync(out).size !== SIZE) throw new Error(`${server}: short file`);
          rmSync(out);
        }
        row[server] = mbps(SIZE, median(times));
      }
      results.push(row);
      const other = (key, name) => (row[key] ? `   ${name} ${row[key].toFixed(1).padStart(6)} MB/s (${(row[key] / row['tftpd-hpa']).toFixed(2)})` : '');
      const floorText = other('no spin', 'native, no spin') + other('js', 'JS sender') + other('node floor', 'bare Node.js');
      console.log(`${label.padEnd(40)} racksmith ${row.racksmith.toFixed(1).padStart(6)} MB/s   tftpd-hpa ${row['tftpd-hpa'].toFixed(1).padStart(6)} MB/s   ratio ${(row.racksmith / row['tftpd-hpa']).toFixed(2)}${floorText}`);
    }
    // Many clients at once: each fetches the 8 MiB file with curl.
    const row = { label: `${CLIENTS} clients at once, curl, 8 MiB each` };
    for (const [server, port] of [['racksmith', ours], ['tftpd-hpa', hpa]]) {
      let failed = 0;
      const ms = await timed(() =>
        Promise.all(
          Array.from({ length: CLIENTS }, (_, i) =>
            fetchOne('curl', port, 'small.bin', join(dir, `c-${server}-${i}`)).then(
              () => (statSync(join(dir, `c-${server}-${i}`)).size === SMALL ? undefined : failed++),
              () => failed++,
            ),
          ),
        ),
      );
      row[server] = mbps(SMALL * CLIENTS, ms);
      row[`${server}Ms`] = ms;
      row[`${server}Failed`] = failed;
    }
    console.log(`${row.label.padEnd(40)} racksmith ${row.racksmith.toFixed(1).padStart(6)} MB/s (${(row.racksmithMs / 1000).toFixed(1)} s, ${row.racksmithFailed} failed)   tftpd-hpa ${row['tftpd-hpa'].toFixed(1).padStart(6)} MB/s (${(row['tftpd-hpaMs'] / 1000).toFixed(1)} s, ${row['tftpd-hpaFailed']} failed)   ratio ${(row.racksmith / row['tftpd-hpa']).toFixed(2)}`);
  } finally {
    for (const s of servers) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
