import pino from 'pino';
import { startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';
import { until as waitUntil } from '../support/wait';
import { InstallService } from '../../src/modules/servers/install.service';
import { JobService } from '../../src/jobs/job.service';
import { JobRunner } from '../../src/jobs/job-runner';
import { JobRegistry } from '../../src/jobs/job-registry';
import { JobRepository } from '../../src/jobs/job.repository';
import { JobQueue } from '../../src/jobs/job-queue';
import { Database } from '../../src/database/database';

jest.setTimeout(90_000);

/**
 * A customer reinstalls their own server: what the plan allows, their keys by default, a
 * post-install script shown back in the job log, progress live over real HTTP (SSE), and the
 * server theirs again (`active`) when the new system phones home.
 */

const KEY_A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA alice@a';
const KEY_NEW = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB alice@new';
const SCRIPT = '#!/bin/sh\napt-get -y install nginx\n';

let t: TestApp;
let runner: JobRunner;
let jobs: JobService;
let install: InstallService;
let tokenA: string;
let tokenB: string;
let serverA: string;
let base: string;
const until = <T>(fn: () => Promise<T>, ok: (v: T) => boolean) => waitUntil(fn, ok, 60_000, 100);
const my = (token: string, url: string, method = 'GET', body?: unknown) => t.request({ method, url: `/api/v1/my${url}`, token, body });

async function customer(id: string, sshKeys: string[]): Promise<string> {
  expect((await t.request({ method: 'PUT', url: `/api/v1/customers/${id}`, body: { name: id, sshKeys } })).status).toBe(201);
  return (await t.request({ method: 'POST', url: `/api/v1/customers/${id}/tokens`, body: { name: 'billing' } })).json.token;
}

beforeAll(async () => {
  t = await startTestApp({ RACKSMITH_CUSTOMER_RATE_LIMIT: '100', RACKSMITH_POWER_SYNC_INTERVAL: '0' });
  jobs = t.app.get(JobService);
  install = t.app.get(InstallService);
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
  const modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: '1U', heightU: 1, bmcDriver: 'fake' } })).json.id;
  expect(
    (await t.request({ method: 'PUT', url: '/api/v1/billing/plans/dedi-r', body: { kind: 'dedicated', spec: { osChoices: ['debian-12', 'ubuntu-24.04'], diskLayouts: ['single'] } } })).status,
  ).toBe(201);
  tokenA = await customer('cust-a', [KEY_A]);
  tokenB = await customer('cust-b', []);
  serverA = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: 'rs-a', role: 'rented-server', modelId, bmc: { address: '127.0.0.2' } } })).json.id;
  for (const to of ['available', 'reserved', 'deploying', 'active']) await t.request({ method: 'POST', url: `/api/v1/servers/${serverA}/transition`, body: { to } });
  await query(t.db.url, `INSERT INTO orders (id, customer, plan, kind, state, server_id) VALUES ('ord-a', 'cust-a', 'dedi-r', 'dedicated', 'active', $1)`, [serverA]);
  runner = new JobRunner(t.app.get(Database), t.app.get(JobRepository), t.app.get(JobRegistry), t.app.get(JobQueue), pino({ level: 'silent' }), { allSiteCodes: async () => ['lab'], heartbeatMs: 200, staleAfterSeconds: 3 });
  await runner.start();
  await t.app.listen(0, '127.0.0.1');
  const addr = t.app.getHttpServer().address() as { port: number };
  base = `http://127.0.0.1:${addr.port}`;
});
afterAll(async () => {
  await runner?.stop();
  await t?.close();
});

/** Read an SSE stream over real HTTP until it ends (the job's final state) or 60 s pass. */
async function readEvents(jobId: string, token: string): Promise<{ type: string; data: string }[]> {
  const res = await fetch(`${base}/api/v1/my/jobs/${jobId}/events`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(60_000) });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/event-stream');
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((b) => b.trim())
    .map((b) => ({ type: /^event: (.*)$/m.exec(b)?.[1] ?? 'message', data: /^data: (.*)$/m.exec(b)?.[1] ?? '' }));
}

describe('a customer reinstalls their own server', () => {
  it('refuses what the plan does not allow, naming the field, and starts nothing', async () => {
    const url = `/servers/${serverA}/reinstall`;
    const os = await my(tokenA, url, 'POST', { os: 'rocky-9', hostname: 'web1.example.com' });
    expect(os.status).toBe(400);
    expect(os.json.error).toMatchObject({ code: 'validation_failed', field: 'os', message: expect.stringContaining('debian-12, ubuntu-24.04') });
    const layout = await my(tokenA, url, 'POST', { os: 'debian-12', hostname: 'web1.example.com', diskLayout: 'raid1' });
    expect(layout.json.error).toMatchObject({ code: 'validation_failed', field: 'diskLayout' });
    const nokeys = await my(tokenA, url, 'POST', { os: 'debian-12', hostname: 'web1.example.com', sshKeys: [] });
    expect(nokeys.json.error).toMatchObject({ code: 'validation_failed', field: 'sshKeys' });
    const host = await my(tokenA, url, 'POST', { os: 'debian-12', hostname: 'not a host!' });
    expect(host.json.error).toMatchObject({ code: 'validation_failed', field: 'hostname' });
    const big = await my(tokenA, url, 'POST', { os: 'debian-12', hostname: 'web1.example.com', postInstallScript: 'x'.repeat(16_385) });
    expect(big.json.error).toMatchObject({ code: 'validation_failed', field: 'postInstallScript' });
    // Another customer's server is not found, whatever the body.
    expect((await my(tokenB, url, 'POST', { os: 'debian-12', hostname: 'web1.example.com', sshKeys: [KEY_NEW] })).status).toBe(404);
    expect(await query(t.db.url, 'SELECT id FROM jobs')).toEqual([]);
  });

  it('installs with their keys and script, live over SSE, and hands the server back when it phones home', async () => {
    // The shipped autoinstall template does not run a post-install script: refused, not dropped.
    const ubuntu = await my(tokenA, `/servers/${serverA}/reinstall`, 'POST', { os: 'ubuntu-24.04', hostname: 'web2.example.com', sshKeys: [KEY_NEW], postInstallScript: SCRIPT });
    expect(ubuntu.json.error).toMatchObject({ code: 'validation_failed', field: 'postInstallScript' });
    const job = await my(tokenA, `/servers/${serverA}/reinstall`, 'POST', { os: 'debian-12', hostname: 'web1.example.com', postInstallScript: SCRIPT });
    expect(job.status).toBe(202);
    expect(job.json).toMatchObject({ kind: 'install', serverId: serverA, createdBy: 'customer:cust-a' });
    const [row] = await query<{ params: { sshKeys: string[]; postInstallScript: string; os: string } }>(t.db.url, 'SELECT params FROM jobs WHERE id = $1', [job.json.id]);
    expect(row).toMatchObject({ params: { sshKeys: [KEY_A], postInstallScript: SCRIPT, os: 'debian-12' } });
    // A second one while it runs is refused; B cannot follow it.
    expect((await my(tokenA, `/servers/${serverA}/reinstall`, 'POST', { os: 'debian-12', hostname: 'web1.example.com' })).json.error.code).toBe('server_busy');
    for (const path of ['', '/logs']) expect((await my(tokenB, `/jobs/${job.json.id}${path}`)).status).toBe(404);
    const foreign = await fetch(`${base}/api/v1/my/jobs/${job.json.id}/events`, { headers: { authorization: `Bearer ${tokenB}` }, signal: AbortSignal.timeout(10_000) });
    expect([foreign.status, ((await foreign.json()) as { error: { code: string } }).error.code]).toEqual([404, 'not_found']);
    expect((await my(tokenB, '/jobs')).json.items).toEqual([]);

    const events = readEvents(job.json.id, tokenA);
    await until(() => jobs.get(job.json.id), (j) => j.tasks!.find((x) => x.name === 'wait-for-installer')!.state === 'waiting');
    expect((await my(tokenA, `/servers/${serverA}`)).json).toMatchObject({ state: 'deploying', job: { id: job.json.id, kind: 'install' } });
    await install.callback(job.json.id, await install.callbackToken(job.json.id), 'done', 'preseed late_command');
    await until(() => jobs.get(job.json.id), (j) => j.tasks!.find((x) => x.name === 'wait-for-first-boot')!.state === 'waiting');
    await install.callback(job.json.id, await install.callbackToken(job.json.id), 'booted', 'first boot of web1; post-install script exited 0 (output in /var/log/racksmith-post-install.log): done');
    const seen = await events;
    expect(seen.at(-1)).toMatchObject({ type: 'job' });
    expect(JSON.parse(seen.at(-1)!.data)).toMatchObject({ state: 'succeeded' });
    expect(seen.some((e) => e.type === 'log' && e.data.includes('post-install script exited 0'))).toBe(true);

    expect((await my(tokenA, `/servers/${serverA}`)).json).toMatchObject({ state: 'active', hostname: 'web1.example.com', job: null });
    const logs = (await my(tokenA, `/jobs/${job.json.id}/logs`)).json.map((l: { message: string }) => l.message).join('\n');
    expect(logs).toContain(`post-install script (${SCRIPT.length} bytes), run once on the first boot:\n${SCRIPT}`);
    expect(logs).toContain('first boot reported: first boot of web1; post-install script exited 0');
    expect((await my(tokenA, '/jobs')).json.items.map((j: { id: string }) => j.id)).toEqual([job.json.id]);
    expect((await my(tokenA, `/jobs/${job.json.id}`)).json).toMatchObject({ state: 'succeeded' });
    const audit = (await t.request({ url: `/api/v1/audit?action=server.reinstall&targetId=${serverA}` })).json.items;
    expect(audit).toEqual([expect.objectContaining({ actor: expect.objectContaining({ name: 'customer:cust-a', kind: 'customer' }) })]);
    expect(audit[0].changes).toMatchObject({ os: 'debian-12', hostname: 'web1.example.com', sshKeys: 1, postInstallScriptBytes: SCRIPT.length, jobId: job.json.id });
    // Staff see the customer's job like any other.
    expect((await t.request({ url: `/api/v1/jobs/${job.json.id}` })).json.createdBy).toBe('customer:cust-a');
  });
});
