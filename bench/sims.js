'use strict';
// Simulated BMCs for the benchmarks: OpenIPMI's ipmi_sim, one process per BMC, each on a loopback
// address of its own (127.0.10.1 …, UDP 16230), and an inventory naming them.
const { spawn } = require('node:child_process');
const { mkdirSync, writeFileSync, rmSync, chmodSync } = require('node:fs');
const { join } = require('node:path');

const PASSWORD = 'bench-bmc-pw';
const UDP_PORT = 16230;
const hostOf = (i) => `127.0.${10 + Math.floor(i / 250)}.${(i % 250) + 1}`;

/** N ipmi_sim processes; every third one is powered off. */
function startSims(dir, n) {
  // As test/support/ipmi-sim.ts: power and boot device kept in files, so actions take effect.
  writeFileSync(
    join(dir, 'chassis.sh'),
    [
      '#!/bin/sh',
      '# chassis_control <dir> get|set <name> [value] ...',
      'd="$1"; shift',
      'op="$1"; shift',
      'if [ "$op" = get ]; then',
      '  for p in "$@"; do case "$p" in power) echo "power:$(cat "$d/power")" ;; boot) echo "boot:$(cat "$d/boot" 2>/dev/null || echo default)" ;; esac; done',
      'else',
      '  while [ $# -gt 0 ]; do case "$1" in power) echo "$2" > "$d/power" ;; boot) echo "$2" > "$d/boot" ;; esac; shift 2; done',
      'fi',
      '',
    ].join('\n'),
  );
  chmodSync(join(dir, 'chassis.sh'), 0o755);
  writeFileSync(join(dir, 'sim.emu'), 'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n');
  const children = [];
  for (let i = 0; i < n; i++) {
    const d = join(dir, `bmc${i}`);
    mkdirSync(join(d, 'state'), { recursive: true });
    writeFileSync(join(d, 'power'), i % 3 === 2 ? '0\n' : '1\n');
    writeFileSync(
      join(d, 'lan.conf'),
      `name "bench${i}"\nset_working_mc 0x20\n  startlan 1\n    addr ${hostOf(i)} ${UDP_PORT}\n    priv_limit admin\n    allowed_auths_callback none md2 md5 straight\n    allowed_auths_user none md2 md5 straight\n    allowed_auths_operator none md2 md5 straight\n    allowed_auths_admin none md2 md5 straight\n    guid a123456789abcdefa123456789abcdef\n  endlan\n  chassis_control "${join(dir, 'chassis.sh')} ${d}"\n  user 2 true "admin" "${PASSWORD}" admin 10 md5 md2 straight none\n`,
    );
    children.push(spawn('/usr/bin/ipmi_sim', ['-c', join(d, 'lan.conf'), '-f', join(dir, 'sim.emu'), '-s', join(d, 'state'), '-n'], { stdio: 'ignore' }));
  }
  return children;
}

function inventory(dir, n) {
  rmSync(join(dir, 'inv'), { recursive: true, force: true });
  mkdirSync(join(dir, 'inv', 'sites'), { recursive: true });
  writeFileSync(join(dir, 'inv', 'models.yaml'), 'hardwareModels:\n  - { vendor: Bench, model: IPMI, heightU: 1, bmcDriver: ipmitool }\n');
  const out = ['sites:\n  - code: bench\n    name: Bench\n    devices:'];
  for (let i = 0; i < n; i++) out.push(`      - { name: b${i}, role: rented-server, model: Bench/IPMI, bmc: { address: '${hostOf(i)}:${UDP_PORT}', username: admin } }`);
  writeFileSync(join(dir, 'inv', 'sites', 'bench.yaml'), `${out.join('\n')}\n`);
  return join(dir, 'inv');
}

module.exports = { PASSWORD, UDP_PORT, hostOf, startSims, inventory };
