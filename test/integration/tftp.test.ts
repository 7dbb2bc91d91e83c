import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { TftpFiles } from '../../src/modules/boot/tftp/tftp-files';
import { requestPacket } from '../../src/modules/boot/tftp/tftp-packet';
import { TftpServer, type TransferEnd } from '../../src/modules/boot/tftp/tftp-server';
import { requirePeer } from '../support/peers';
import { RawTftpClient } from '../support/tftp-client';
import { until } from '../support/wait';
import { startServe, type Served } from '../support/cli';
import { createTestDatabase } from '../support/db';
import { freeUdpPort } from '../support/ipmi-sim';

jest.setTimeout(60_000);
const run = promisify(execFile);

let dir: string;
let root: string;
let server: TftpServer;
let port: number;
let tftpFiles: TftpFiles;
const ends: TransferEnd[] = [];
const files: Record<string, Buffer> = {};
const clients: RawTftpClient[] = [];

async function raw(): Promise<RawTftpClient> {
  const c = await RawTftpClient.open();
  clients.push(c);
  return c;
}

beforeAll(async () => {
  requirePeer('/usr/bin/atftp', 'atftp');
  requirePeer('/usr/bin/tftp', 'tftp-hpa');
  requirePeer('/usr/lib/ipxe/undionly.kpxe', 'ipxe');
  dir = mkdtempSync(join(tmpdir(), 'racksmith-tftp-'));
  root = join(dir, 'root');
  require('node:fs').mkdirSync(root);
  files['small.bin'] = randomBytes(700);
  files['exact.bin'] = randomBytes(1024); // a multiple of 512: ends with an empty block
  files['big.bin'] = randomBytes(5 * 1024 * 1024 + 123);
  files['wrap.bin'] = randomBytes(40 * 1024 * 1024 + 7); // > 65535 blocks of 512: the block number wraps
  for (const [name, data] of Object.entries(files)) writeFileSync(join(root, name), data);
  symlinkSync('/usr/lib/ipxe/undionly.kpxe', join(root, 'undionly.kpxe'));
  writeFileSync(join(dir, 'secret.txt'), 'outside the root');
  tftpFiles = new TftpFiles(root, async (name, client) => (name === 'racksmith/whoami.ipxe' ? Buffer.from(`#!ipxe\necho ${client.address}\n`) : null));
});
afterAll(async () => {
  for (const c of clients) c.close();
  rmSync(dir, { recursive: true, force: true });
});

const out = (name: string) => join(dir, `got-${name}-${randomBytes(3).toString('hex')}`);

// Both senders follow the same rules: the native one (a thread per transfer, built by npm install)
// and the JavaScript one (used where the native one is not built).
describe.each(['native', 'js'] as const)('TFTP server with real clients (%s sender)', (sender) => {
  beforeAll(async () => {
    ends.length = 0;
    server = new TftpServer({ address: '127.0.0.1', port: 0, open: (n, c) => tftpFiles.open(n, c), timeoutMs: 200, retries: 3, maxPerClient: 4, sender, log: pino({ level: 'silent' }) });
    expect(server.sender).toBe(sender);
    server.on('transfer', (e: TransferEnd) => ends.push(e));
    port = (await server.start()).port;
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('curl: small, block-multiple, 5 MiB at blksize 1468, a symlinked iPXE loader, a generated file', async () => {
    for (const [name, extra] of [['small.bin', []], ['exact.bin', []], ['big.bin', ['--tftp-blksize', '1468']]] as const) {
      const o = out(name);
      await run('curl', ['-sS', '--fail', ...extra, '-o', o, `tftp://127.0.0.1:${port}/${name}`]);
      expect(readFileSync(o).equals(files[name]!)).toBe(true);
    }
    const o = out('kpxe');
    await run('curl', ['-sS', '-o', o, `tftp://127.0.0.1:${port}/undionly.kpxe`]);
    expect(readFileSync(o).equals(readFileSync('/usr/lib/ipxe/undionly.kpxe'))).toBe(true);
    const g = out('gen');
    await run('curl', ['-sS', '-o', g, `tftp://127.0.0.1:${port}/racksmith/whoami.ipxe`]);
    expect(readFileSync(g, 'utf8')).toBe('#!ipxe\necho 127.0.0.1\n');
  });

  it('curl: 40 MiB at 512-byte blocks, past block number 65535', async () => {
    const o = out('wrap');
    await run('curl', ['-sS', '--fail', '-o', o, `tftp://127.0.0.1:${port}/wrap.bin`], { maxBuffer: 1 << 20 });
    expect(readFileSync(o).equals(files['wrap.bin']!)).toBe(true);
  });

  it('atftp with blksize, tsize and windowsize 16; tftp-hpa lock-step', async () => {
    const o = out('atftp');
    await run('atftp', ['--option', 'blksize 1468', '--option', 'windowsize 16', '--option', 'tsize', '-g', '-r', 'big.bin', '-l', o, '127.0.0.1', String(port)]);
    expect(readFileSync(o).equals(files['big.bin']!)).toBe(true);
    const last = ends.filter((e) => e.filename === 'big.bin').at(-1)!;
    expect(last).toMatchObject({ outcome: 'done', blksize: 1468, windowsize: 16 });

    const h = out('hpa');
    await run('tftp', ['-m', 'binary', '127.0.0.1', String(port), '-c', 'get', 'small.bin', h]);
    expect(readFileSync(h).equals(files['small.bin']!)).toBe(true);
  });

  it('refuses names outside the root with error 2, unknown files with error 1, writes with error 2', async () => {
    for (const name of ['../secret.txt', '/../secret.txt', 'a/../../secret.txt', '..\\secret.txt']) {
      const c = await raw();
      c.request(port, name);
      await until(async () => c.error(), (e) => !!e, 3000);
      expect(c.error()!.code).toBe(2);
      expect(c.data(1)).toHaveLength(0);
    }
    const missing = await raw();
    missing.request(port, 'nope.bin');
    await until(async () => missing.error(), (e) => !!e, 3000);
    expect(missing.error()!.code).toBe(1);
    const write = await raw();
    write.request(port, 'new.bin', {}, 2);
    await until(async () => write.error(), (e) => !!e, 3000);
    expect(write.error()!.code).toBe(2);
  });

  it('a duplicate ACK sends nothing (no Sorcerer\'s Apprentice); silence is retransmitted with backoff, then given up', async () => {
    const c = await raw();
    c.request(port, 'big.bin');
    await until(async () => c.data(1), (d) => d.length === 1, 3000);
    c.ack(1);
    await until(async () => c.data(2), (d) => d.length === 1, 3000);
    c.ack(1);
    c.ack(1);
    c.ack(1);
    await new Promise((r) => setTimeout(r, 120)); // under the 200 ms timeout
    expect(c.data(2)).toHaveLength(1);
    expect(c.data(3)).toHaveLength(0);

    // Now silence: block 2 again after ~200 ms, ~400 ms, ~800 ms, then the server gives up.
    await until(async () => c.error(), (e) => !!e, 5000);
    const resends = c.data(2).map((d) => d.at);
    expect(resends).toHaveLength(4);
    const gaps = resends.slice(1).map((t, i) => t - resends[i]!);
    expect(gaps[1]!).toBeGreaterThan(gaps[0]! * 1.5);
    expect(gaps[2]!).toBeGreaterThan(gaps[1]! * 1.5);
    expect(c.error()!.message).toBe('timeout');
    // An earlier client (curl, atftp) may have had the same ephemeral port: the latest transfer is this one's.
    const mine = await until(async () => ends.filter((e) => e.client.port === c.port && e.filename === 'big.bin').at(-1), (e) => e?.outcome === 'timeout', 3000);
    expect(mine).toMatchObject({ outcome: 'timeout', retransmits: 3 });
  });

  it('windowsize: an ACK inside the window restarts it after the ACKed block; a stray sender changes nothing', async () => {
    const c = await raw();
    c.request(port, 'big.bin', { windowsize: 4, blksize: 1000 });
    await until(async () => c.got, (g) => g.some((x) => x.packet?.op === 6), 3000);
    c.ack(0);
    await until(async () => c.data(4), (d) => d.length === 1, 3000);
    // Block 2 "was lost": ACK 1, and the window restarts at 2.
    c.ack(1);
    await until(async () => c.data(5), (d) => d.length === 1, 3000);
    expect(c.data(2)).toHaveLength(2);
    expect(c.data(6)).toHaveLength(0);

    // A stray sender's ACK never reaches the transfer (its socket is connected to the client).
    const stray = await raw();
    stray.raw(c.transferPort!, Buffer.from([0, 4, 0, 5]));
    await new Promise((r) => setTimeout(r, 100));
    expect(c.data(6)).toHaveLength(0);
    expect(stray.got).toHaveLength(0);
    c.ack(5);
    await until(async () => c.data(9), (d) => d.length === 1, 3000);
    c.raw(c.transferPort!, Buffer.from([0, 5, 0, 0, 0])); // the client gives up
    await until(async () => ends.find((e) => e.client.port === c.port && e.outcome === 'client-error'), (e) => !!e, 3000);
    expect(server.active).toBe(0);
  });

  it('at most maxPerClient transfers per client address', async () => {
    const held: RawTftpClient[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await raw();
      c.request(port, 'big.bin');
      held.push(c);
    }
    await until(async () => held.map((c) => c.data(1).length), (n) => n.every((x) => x >= 1), 3000);
    const extra = await raw();
    extra.request(port, 'small.bin');
    await until(async () => extra.error(), (e) => !!e, 3000);
    expect(extra.error()!.message).toMatch(/busy/);
    for (const c of held) c.raw(c.transferPort!, Buffer.from([0, 5, 0, 0, 0]));
    await until(async () => server.active, (n) => n === 0, 3000);
  });

  it('thousands of random and truncated packets crash nothing and get no answer', async () => {
    const fuzz = await raw();
    const valid = requestPacket(1, 'small.bin', 'octet', { blksize: 1468, tsize: 0, windowsize: 8 });
    for (let i = 0; i < 3000; i++) {
      const kind = i % 3;
      // Truncated: cut anywhere but right after a NUL (that would be a shorter, valid request).
      let cut = i % valid.length;
      while (cut > 0 && valid[cut - 1] === 0) cut--;
      const p = kind === 0 ? randomBytes(1 + (i % 600)) : kind === 1 ? valid.subarray(0, cut) : Buffer.concat([Buffer.from([0, (i % 7) + 3]), randomBytes(i % 40)]);
      fuzz.raw(port, p);
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(fuzz.got).toHaveLength(0);
    const o = out('after-fuzz');
    await run('curl', ['-sS', '--fail', '-o', o, `tftp://127.0.0.1:${port}/small.bin`]);
    expect(readFileSync(o).equals(files['small.bin']!)).toBe(true);
  });

  it('random packets from the client to its transfer change nothing; stopping the server ends a transfer at once', async () => {
    const c = await raw();
    c.request(port, 'big.bin');
    await until(async () => c.data(1), (d) => d.length === 1, 3000);
    for (let i = 0; i < 2000; i++) {
      let p = randomBytes(1 + (i % 700));
      // Anything but an ACK or an ERROR (those mean something).
      while (p.length >= 2 && p[0] === 0 && (p[1] === 4 || p[1] === 5)) p = randomBytes(p.length);
      c.raw(c.transferPort!, p);
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 100)); // the JS sender shares this event loop: let it drain its socket
    c.ack(1);
    await until(async () => c.data(2), (d) => d.length >= 1, 3000);
    expect(c.data(3)).toHaveLength(0);
    const t0 = Date.now();
    await server.stop();
    expect(Date.now() - t0).toBeLessThan(2000); // not the transfer's own timeout (200 ms × 2^n, 3 retries)
    expect(server.active).toBe(0);
    expect(ends.filter((e) => e.client.port === c.port && e.filename === 'big.bin').at(-1)).toMatchObject({ outcome: 'timeout', bytes: 512 });
  });
});

describe('TFTP in racksmith serve', () => {
  it('is off without a boot address (and /health says so); with one it serves the iPXE loaders, counted in /metrics', async () => {
    const db = await createTestDatabase();
    const served: Served[] = [];
    try {
      const off = await startServe({ DATABASE_URL: db.url, RACKSMITH_INVENTORY_SEED: '', RACKSMITH_POWER_SYNC_INTERVAL: '0' });
      served.push(off);
      const health = await (await fetch(`${off.url}/health`)).json();
      expect(health.checks.tftp).toEqual({ status: 'off', detail: 'no boot address configured (RACKSMITH_BOOT_ADDRESS)' });
      expect(off.stdout()).toContain('boot services off');
      await off.stop();

      const tftpPort = await freeUdpPort();
      const on = await startServe({ DATABASE_URL: db.url, RACKSMITH_INVENTORY_SEED: '', RACKSMITH_POWER_SYNC_INTERVAL: '0', RACKSMITH_BOOT_ADDRESS: '127.0.0.1', RACKSMITH_TFTP_PORT: String(tftpPort), RACKSMITH_BOOTSTRAP_TOKEN: 'tftp-test-bootstrap-token-0123456789' });
      served.push(on);
      const o = out('serve');
      await run('curl', ['-sS', '--fail', '-o', o, `tftp://127.0.0.1:${tftpPort}/undionly.kpxe`]);
      expect(readFileSync(o).equals(readFileSync('/usr/lib/ipxe/undionly.kpxe'))).toBe(true);
      expect((await (await fetch(`${on.url}/health`)).json()).checks.tftp.status).toBe('ok');
      const metrics = await (await fetch(`${on.url}/metrics`, { headers: { authorization: 'Bearer tftp-test-bootstrap-token-0123456789' } })).text();
      expect(metrics).toMatch(/racksmith_tftp_transfers_total\{[^}]*outcome="done"[^}]*\} 1/);
    } finally {
      for (const s of served) await s.stop();
      await db.drop();
    }
  });
});
