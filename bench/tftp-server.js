'use strict';
// racksmith's TFTP server alone in its own process, for bench/tftp.js:
//   node bench/tftp-server.js <root> <port>
const pino = require('pino');
const { TftpServer } = require('../dist/modules/boot/tftp/tftp-server');
const { TftpFiles } = require('../dist/modules/boot/tftp/tftp-files');

const [root, port] = process.argv.slice(2);
const files = new TftpFiles(root);
const server = new TftpServer({ address: '127.0.0.1', port: Number(port), open: (n, c) => files.open(n, c), maxTransfers: 2000, maxPerClient: 1000, log: pino({ level: 'warn' }) });
server.start().then(({ port: p }) => console.log(`listening ${p}`));
process.on('SIGTERM', () => server.stop().then(() => process.exit(0)));
