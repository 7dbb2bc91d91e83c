'use strict';
// `npm run bench`: the benchmarks here and how each one runs (each needs its own setup, said in
// its first lines; the figures, commands and machines are in bench/RESULTS.md).
const { readdirSync, readFileSync } = require('node:fs');
const { join } = require('node:path');

for (const file of readdirSync(__dirname).sort()) {
  if (!/\.(bench\.ts|js)$/.test(file) || ['run.js', 'lib.js', 'jest.config.js'].includes(file)) continue;
  const head = readFileSync(join(__dirname, file), 'utf8').split('\n').filter((l) => l.startsWith('//'));
  const how = head.find((l) => /^\/\/\s+(npm|npx|node)\b/.test(l));
  process.stdout.write(`${file.padEnd(24)} ${how ? how.replace(/^\/\/\s+/, '') : '(see the file)'}\n`);
}
