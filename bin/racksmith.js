#!/usr/bin/env node
'use strict';
require('../dist/main.js').main(process.argv).catch((err) => {
  process.stderr.write(`racksmith: ${err && err.message ? err.message : err}\n`);
  process.exit(1);
});
