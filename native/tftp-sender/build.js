'use strict';
// Builds the native TFTP sender with node-gyp (`npm install` runs this; `npm run build:native` too).
// Uses this Node.js's own headers when they are installed next to it (Debian's nodejs puts them in
// /usr/include/node), so nothing is downloaded. Without make and a C compiler the build fails, this
// says so, and the TFTP server sends from JavaScript: `npm install` still succeeds.
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { dirname, join } = require('node:path');

const args = ['rebuild', '--directory', __dirname, '--loglevel=warn'];
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
// npm names its bundled node-gyp; outside npm, one on the PATH.
const gyp = process.env.npm_config_node_gyp;
const r = gyp ? spawnSync(process.execPath, [gyp, ...args], { stdio: 'inherit' }) : spawnSync('node-gyp', args, { stdio: 'inherit' });
if (r.status !== 0) {
  console.warn('racksmith: the native TFTP sender was not built (needs make and a C compiler); TFTP will send from JavaScript');
  process.exitCode = process.argv.includes('--strict') ? 1 : 0;
}
