'use strict';
// The floor of lock-step TFTP in Node.js on this machine, for bench/tftp.js: a sender that does
// nothing but answer each ACK with the next DATA packet (no options but blksize, no timeouts, no
// checks). What racksmith's server costs above Node's own UDP path is the gap to this.
//   node bench/tftp-floor.js <file> <port>
const dgram = require('node:dgram');
const { readFileSync } = require('node:fs');

const [file, port] = process.argv.slice(2);
const data = readFileSync(file);
const main = dgram.createSocket('udp4');
main.on('message', (msg, r) => {
  const m = /blksize\0(\d+)\0/.exec(msg.toString('latin1'));
  const bs = m ? Number(m[1]) : 512;
  const blocks = Math.floor(data.length / bs) + 1;
  const packet = (n) => {
    const d = data.subarray((n - 1) * bs, Math.min(n * bs, data.length));
    const p = Buffer.allocUnsafe(4 + d.length);
    p[0] = 0;
    p[1] = 3;
    p.writeUInt16BE(n & 0xffff, 2);
    d.copy(p, 4);
    return p;
  };
  const t = dgram.createSocket('udp4');
  t.bind(0, '127.0.0.1', () =>
    t.connect(r.port, r.address, () => {
      let n = 0;
      t.on('message', (a) => {
        const b = a.readUInt16BE(2);
        if (b !== (n & 0xffff)) return;
        if (n === blocks) return t.close();
        n++;
        t.send(packet(n));
      });
      if (m) t.send(Buffer.from(`\0\x06blksize\0${bs}\0`, 'latin1'));
      else {
        n = 1;
        t.send(packet(1));
      }
    }),
  );
});
main.bind(Number(port), '127.0.0.1', () => console.log(`listening ${port}`));
process.on('SIGTERM', () => process.exit(0));
