'use strict';
// Small helpers shared by the benchmarks: start a command in its own process group, wait for
// an HTTP answer, stop the whole group.
const { execFileSync, spawn } = require('node:child_process');
const { join } = require('node:path');
const { createServer } = require('node:net');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function start(cmd, args, env, opts = {}) {
  const child = spawn(cmd, args, { env: { ...cleanEnv(), ...env }, cwd: opts.cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.on('exit', r));
  return {
    child,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      try {
        process.kill(-child.pid, signal);
      } catch {}
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {}
      }, 20000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RACKSMITH_') && k !== 'DATABASE_URL'));
}

async function waitFor(url, timeoutMs, headers = {}) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const res = await fetch(url, { headers });
      if (res.status === 200) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** autocannon in its own process; requests/s, latency p50/p99 and how many failed. */
function cannon(url, { connections, seconds, headers = {} }) {
  const args = [join(__dirname, '..', 'node_modules', 'autocannon', 'autocannon.js'), '-j', '-c', String(connections), '-d', String(seconds)];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}=${v}`);
  args.push(url);
  const r = JSON.parse(execFileSync(process.execPath, args, { maxBuffer: 1 << 24 }).toString());
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, bad: r.non2xx + r.errors + r.timeouts };
}

/** A UDP port nobody holds right now on 127.0.0.1. */
function freeUdpPort() {
  const { createSocket } = require('node:dgram');
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A fresh database on the machine's PostgreSQL (TEST_PG_ADMIN_URL to change) for one benchmark run. */
async function benchDatabase(tag) {
  const { Client } = require('pg');
  const adminUrl = process.env.TEST_PG_ADMIN_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  const name = `racksmith_bench_${tag}_${process.pid}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

module.exports = { freePort, freeUdpPort, start, waitFor, median, cannon, benchDatabase };
