'use strict';
// Boot storm: N simulated PXE clients power on at once. Each one does what a PXE ROM does:
// DHCP DISCOVER, OFFER, REQUEST, ACK from racksmith's authoritative DHCP (its reserved address),
// then fetches undionly.kpxe over TFTP (blksize 1468, lock-step) from the address it was given.
// Zero failures expected; wall time and per-client times reported. The TFTP part alone is also
// run against tftpd-hpa serving the same file, in the same run.
//   npm run build && node bench/boot-storm.js [clients=500]
// Needs PostgreSQL on 127.0.0.1:5432, tftpd-hpa and the ipxe package. Clients live on loopback
// addresses 127.0.100.1 …; DHCP "broadcasts" go to 127.0.0.1 (RACKSMITH_DHCP_BROADCAST).
const { createSocket } = require('node:dgram');
const { readFileSync, mkdtempSync, mkdirSync, writeFileSync, rmSync, chmodSync, copyFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { spawnSync } = require('node:child_process');
const { benchDatabase, start, waitFor, freePort, freeUdpPort } = require('./lib');
const { encodeDhcp, parseDhcp, MSG, OPT, opt } = require('../dist/modules/boot/dhcp/dhcp-packet');
const { requestPacket, ackPacket, parsePacket } = require('../dist/modules/boot/tftp/tftp-packet');

const N = Number(process.argv[2] || 500);
const ROOT = join(__dirname, '..');
const BOOTSTRAP = 'bench-bootstrap-token-0123456789abcdef';
const LOADER = readFileSync('/usr/lib/ipxe/undionly.kpxe');
const PXE = [[OPT.VENDOR_CLASS, opt.text('PXEClient:Arch:00000:UNDI:002001')], [OPT.CLIENT_ARCH, Buffer.from([0, 0])]];

const macOf = (i) => `52:54:00:b5:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
const ipOf = (i) => `127.0.${100 + Math.floor(i / 250)}.${(i % 250) + 1}`;
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

function udp(address) {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.bind(0, address, () => resolve(s));
  });
}

/** One lock-step TFTP fetch from `server`, from a socket on the client's own address. */
async function tftpFetch(address, serverPort, name) {
  const s = await udp(address);
  try {
    return await new Promise((resolve, reject) => {
      let expect = 1;
      let got = 0;
      let tid;
      let timer;
      let tries = 0;
      const rrq = requestPacket(1, name, 'octet', { blksize: 1468 });
      const arm = (resend) => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          if (++tries > 5) return reject(new Error(`tftp timeout at block ${expect}`));
          resend();
          arm(resend);
        }, 3000);
      };
      const sendRrq = () => s.send(rrq, serverPort, '127.0.0.1');
      s.on('message', (msg, r) => {
        const p = parsePacket(msg);
        if (!p) return;
        tid ??= r.port;
        if (p.op === 5) return reject(new Error(`tftp error ${p.code} ${p.message}`));
        if (p.op === 6) {
          s.send(ackPacket(0), tid, '127.0.0.1');
          return arm(() => s.send(ackPacket(0), tid, '127.0.0.1'));
        }
        if (p.op !== 3) return;
        if (p.block !== (expect & 0xffff)) return s.send(ackPacket(p.block), tid, '127.0.0.1');
        got += p.data.length;
        s.send(ackPacket(p.block), tid, '127.0.0.1');
        expect++;
        tries = 0;
        if (p.data.length < 1468) {
          clearTimeout(timer);
          return got === LOADER.length ? resolve(got) : reject(new Error(`got ${got} bytes`));
        }
        arm(() => s.send(ackPacket(p.block), tid, '127.0.0.1'));
      });
      sendRrq();
      arm(sendRrq);
    });
  } finally {
    s.close();
  }
}

/** DHCP DORA through one shared client socket, replies matched by xid. */
function dhcpClient(socket, serverPort) {
  const waiting = new Map();
  socket.on('message', (msg) => {
    const p = parseDhcp(msg);
    const w = p && waiting.get(p.xid);
    if (w && p.type === w.type) {
      waiting.delete(p.xid);
      w.resolve(p);
    }
  });
  const ask = (packet, xid, type) =>
    new Promise((resolve, reject) => {
      let tries = 0;
      const send = () => socket.send(packet, serverPort, '127.0.0.1');
      const timer = setInterval(() => (++tries > 4 ? (clearInterval(timer), waiting.delete(xid), reject(new Error('dhcp timeout'))) : send()), 4000);
      waiting.set(xid, { type, resolve: (p) => (clearInterval(timer), resolve(p)) });
      send();
    });
  return async (i) => {
    const xid = (0x1000000 + i * 7919) >>> 0;
    const mac = macOf(i);
    const offer = await ask(encodeDhcp({ op: 1, type: MSG.DISCOVER, xid, flags: 0x8000, mac, options: PXE }), xid, MSG.OFFER);
    const ack = await ask(encodeDhcp({ op: 1, type: MSG.REQUEST, xid, flags: 0x8000, mac, options: [[OPT.SERVER_ID, opt.ip('127.0.0.1')], [OPT.REQUESTED_IP, opt.ip(offer.yiaddr)], ...PXE] }), xid, MSG.ACK);
    return { ip: ack.yiaddr, file: ack.file };
  };
}

async function storm(label, one) {
  const times = [];
  let failed = 0;
  const errors = new Map();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const s = performance.now();
      try {
        await one(i);
        times.push(performance.now() - s);
      } catch (err) {
        failed++;
        errors.set(err.message, (errors.get(err.message) ?? 0) + 1);
      }
    }),
  );
  const wall = performance.now() - t0;
  console.log(`${label.padEnd(52)} ${N} clients  wall ${(wall / 1000).toFixed(2)} s  per client p50 ${(pct(times, 50) / 1000).toFixed(2)} s  p99 ${(pct(times, 99) / 1000).toFixed(2)} s  failed ${failed}${errors.size ? ` ${JSON.stringify([...errors])}` : ''}`);
}

(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-bench-storm-'));
  const db = await benchDatabase('storm');
  // The inventory: N servers, each NIC with its reserved address on one provisioning network.
  mkdirSync(join(dir, 'inv', 'sites'), { recursive: true });
  writeFileSync(join(dir, 'inv', 'models.yaml'), 'hardwareModels:\n  - { vendor: Bench, model: PXE, heightU: 1 }\n');
  const devices = Array.from({ length: N }, (_, i) => `      - { name: s${i}, role: rented-server, model: Bench/PXE, nics: [{ name: eth0, mac: '${macOf(i)}', pxe: true, ip: ${ipOf(i)} }] }`);
  writeFileSync(join(dir, 'inv', 'sites', 'bench.yaml'), `sites:\n  - code: bench\n    name: Bench\n    devices:\n${devices.join('\n')}\n`);
  const env = { DATABASE_URL: db.url, RACKSMITH_INVENTORY_SEED: '' };
  const imported = spawnSync(process.execPath, [join(ROOT, 'bin', 'racksmith.js'), 'inventory', 'import', join(dir, 'inv')], { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (imported.status !== 0) throw new Error(imported.stderr);

  // The 500 simulated machines share this one DHCP socket (real ones each have their own NIC):
  // a receive buffer big enough that the bench itself drops none of their replies.
  const client = await udp('127.0.0.1');
  client.setRecvBufferSize(4 * 1024 * 1024);
  const port = await freePort();
  const dhcpPort = await freeUdpPort();
  const tftpPort = await freeUdpPort();
  const hpaPort = await freeUdpPort();
  const proc = start(process.execPath, [join(ROOT, 'bin', 'racksmith.js'), 'serve'], {
    ...env,
    RACKSMITH_PORT: String(port),
    RACKSMITH_BOOTSTRAP_TOKEN: BOOTSTRAP,
    RACKSMITH_LOG_LEVEL: 'warn',
    RACKSMITH_POWER_SYNC_INTERVAL: '0',
    RACKSMITH_CONSOLE_RECONCILE_INTERVAL: '0',
    RACKSMITH_BOOT_ADDRESS: '127.0.0.1',
    RACKSMITH_DHCP_MODE: 'authoritative',
    RACKSMITH_DHCP_BIND: '127.0.0.1',
    RACKSMITH_DHCP_PORT: String(dhcpPort),
    RACKSMITH_DHCP_BROADCAST: '127.0.0.1',
    RACKSMITH_DHCP_CLIENT_PORT: String(client.address().port),
    RACKSMITH_TFTP_PORT: String(tftpPort),
  });
  // tftpd-hpa serves the same loader (it drops to the tftp user: a world-readable copy).
  const root = join(dir, 'tftp');
  mkdirSync(root);
  chmodSync(dir, 0o755);
  chmodSync(root, 0o755);
  copyFileSync('/usr/lib/ipxe/undionly.kpxe', join(root, 'undionly.kpxe'));
  chmodSync(join(root, 'undionly.kpxe'), 0o644);
  const hpa = start('/usr/sbin/in.tftpd', ['-L', '-s', root, '-a', `127.0.0.1:${hpaPort}`], {});
  try {
    await waitFor(`http://127.0.0.1:${port}/health`, 60000);
    const net = await fetch(`http://127.0.0.1:${port}/api/v1/boot-networks`, { method: 'POST', headers: { authorization: `Bearer ${BOOTSTRAP}`, 'content-type': 'application/json' }, body: JSON.stringify({ site: 'bench', name: 'prov', cidr: '127.0.0.0/8', gateway: '127.0.0.1', dns: ['127.0.0.1'] }) });
    if (net.status !== 201) throw new Error(`boot network: ${net.status} ${await net.text()}`);
    const dora = dhcpClient(client, dhcpPort);

    await storm('TFTP only: tftpd-hpa, undionly.kpxe', (i) => tftpFetch(ipOf(i), hpaPort, 'undionly.kpxe'));
    await storm('TFTP only: racksmith, undionly.kpxe', (i) => tftpFetch(ipOf(i), tftpPort, 'undionly.kpxe'));
    await storm('racksmith: DHCP DORA, then undionly.kpxe over TFTP', async (i) => {
      const lease = await dora(i);
      if (lease.ip !== ipOf(i) || lease.file !== 'undionly.kpxe') throw new Error(`wrong lease ${lease.ip} ${lease.file}`);
      await tftpFetch(lease.ip, tftpPort, lease.file);
    });
  } finally {
    client.close();
    await hpa.stop();
    await proc.stop();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
