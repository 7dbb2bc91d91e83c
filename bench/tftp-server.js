'use strict';
// racksmith's TFTP server alone in its own process, for bench/tftp.js:
//   node bench/tftp-server.js <root> <port> [sender=auto|native|js] [spinUs=50]
const pino = require('pino');
const { TftpServer } = require('../dist/modules/boot/tftp/tftp-server');
const { TftpFiles } = require('../dist/modules/boot/tftp/tftp-files');

const [root, port, sender = 'auto', spinUs = '50'] = process.argv.slice(2);
const files = new TftpFiles(root);
const server = new TftpServer({ address: '127.0.0.1', port: Number(port), open: (n, c) => files.open(n, c), maxTransfers: 2000, maxPerClient: 1000, sender, spinUs: Number(spinUs), log: pino({ level: 'warn' }) });
server.start().then(({ port: p }) => console.log(`listening ${p}, ${server.sender} sender`));
process.on('SIGTERM', () => server.stop().then(() => process.exit(0)));
