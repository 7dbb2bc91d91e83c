import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { BOOTSTRAP, startTestApp, type TestApp, SECRET_KEY } from '../support/app';
import { runCli, startServe, type Served } from '../support/cli';
import { query } from '../support/db';
import { until as waitUntil } from '../support/wait';

const until = <T>(fn: () => Promise<T>, ok: (v: T) => boolean) => waitUntil(fn, ok, 60_000, 100);
import { InstallService } from '../../src/modules/servers/install.service';
import { JobService } from '../../src/jobs/job.service';
import { JobRunner } from '../../src/jobs/job-runner';
import { JobRegistry } from '../../src/jobs/job-registry';
import { JobRepository } from '../../src/jobs/job.repository';
import { JobQueue } from '../../src/jobs/job-queue';
import { Database } from '../../src/database/database';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl engineer@example';

let t: TestApp;
let jobs: JobService;
let install: InstallService;
let modelId: string;
beforeAll(async () => {
  t = await startTestApp();
  jobs = t.app.get(JobService);
  install = t.app.get(InstallService);
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
  modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: '1U', heightU: 1, bmcDriver: 'fake' } })).json.id;
});
afterAll(() => t?.close());

let n = 0;
async function availableServer(): Promise<string> {
  const id = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: `rs-${++n}`, role: 'rented-server', modelId, bmc: { address: '127.0.0.2' } } })).json.id;
  await t.request({ method: 'POST', url: `/api/v1/servers/${id}/transition`, body: { to: 'available' } });
  return id;
}
const installBody = { os: 'debian-12' as const, hostname: 'web1.example.com', sshKeys: [KEY] };
/** The installer reports done, then the installed system its first boot (the shipped preseed writes that report). */
async function finish(jobId: string): Promise<void> {
  await install.callback(jobId, await install.callbackToken(jobId), 'done');
  await install.callback(jobId, await install.callbackToken(jobId), 'booted');
}


describe('install requests', () => {
  it('refuses bad input with the field, a server in maintenance, and a busy server naming its job', async () => {
    const id = await availableServer();
    const bad = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: { ...installBody, hostname: 'not a host!' } });
    expect(bad.json.error).toMatchObject({ code: 'validation_failed', field: 'hostname' });
    const nokey = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: { os: 'debian-12', hostname: 'a.example' } });
    expect(nokey.json.error).toMatchObject({ code: 'validation_failed', field: 'sshKeys' });
    const os = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: { ...installBody, os: 'windows-11' } });
    expect(os.json.error).toMatchObject({ code: 'validation_failed', field: 'os' });

    const first = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: installBody });
    expect(first.status).toBe(202);
    expect(first.json).toMatchObject({ kind: 'install', state: 'queued', serverId: id, tasks: expect.any(Array) });
    expect(first.json.tasks.map((x: { name: string }) => x.name)).toEqual(['stage-image', 'mark-deploying', 'power-off', 'pxe-once', 'power-on', 'wait-for-installer', 'boot-from-disk', 'wait-for-first-boot', 'mark-active']);
    const second = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: installBody });
    expect(second.status).toBe(409);
    expect(second.json.error).toMatchObject({ code: 'server_busy', details: { jobId: first.json.id } });
    const queued = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: { ...installBody, queue: true } });
    expect(queued.json).toMatchObject({ state: 'queued', waitsFor: first.json.id });

    const other = await availableServer();
    await t.request({ method: 'PUT', url: `/api/v1/servers/${other}/maintenance`, body: { enabled: true, reason: 'disk swap' } });
    const maint = await t.request({ method: 'POST', url: `/api/v1/servers/${other}/install`, body: installBody });
    expect(maint.json.error).toMatchObject({ code: 'in_maintenance' });
    // The params keep no secret in clear: the callback token is sealed.
    const [row] = await query<{ params: { callbackToken: string } }>(t.db.url, 'SELECT params FROM jobs WHERE id = $1', [first.json.id]);
    expect(row.params.callbackToken).not.toBe(await install.callbackToken(first.json.id));
  });

  it('stores a root password only as its SHA-512 crypt hash', async () => {
    const id = await availableServer();
    const res = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: { os: 'rocky-9', hostname: 'db1.example.com', rootPassword: 'correct horse battery' } });
    expect(res.status).toBe(202);
    const [row] = await query<{ params: { rootPasswordHash: string } }>(t.db.url, 'SELECT params FROM jobs WHERE id = $1', [res.json.id]);
    expect(JSON.stringify(row.params)).not.toContain('correct horse');
    const hash = row.params.rootPasswordHash;
    expect(hash).toMatch(/^\$6\$/);
    const salt = hash.split('$')[2];
    const again = execFileSync('openssl', ['passwd', '-6', '-salt', salt, '-stdin'], { input: 'correct horse battery\n' }).toString().trim();
    expect(again).toBe(hash);
    const audit = await query(t.db.url, 'SELECT changes::text AS c FROM audit_events');
    expect(JSON.stringify(audit)).not.toContain('correct horse');
    const both = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: { os: 'rocky-9', hostname: 'db1.example.com', rootPassword: 'correct horse battery', rootPasswordHash: hash } });
    expect(both.json.error).toMatchObject({ code: 'validation_failed', field: 'sshKeys' });
    const short = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: { os: 'rocky-9', hostname: 'db1.example.com', rootPassword: 'short' } });
    expect(short.json.error).toMatchObject({ code: 'validation_failed', field: 'rootPassword' });
  });

  it('takes a post-install script only within 16 KiB and only where the template runs it', async () => {
    const id = await availableServer();
    const url = `/api/v1/servers/${id}/install`;
    const big = await t.request({ method: 'POST', url, body: { ...installBody, postInstallScript: 'x'.repeat(16_385) } });
    expect(big.status).toBe(400);
    expect(big.json.error).toMatchObject({ code: 'validation_failed', field: 'postInstallScript' });
    // Rocky's shipped kickstart does not write it: refused rather than silently dropped.
    const rocky = await t.request({ method: 'POST', url, body: { ...installBody, os: 'rocky-9', postInstallScript: 'echo hi' } });
    expect(rocky.status).toBe(400);
    expect(rocky.json.error).toMatchObject({ code: 'validation_failed', field: 'postInstallScript', message: expect.stringContaining('rocky-9') });
    expect(await query(t.db.url, "SELECT id FROM jobs WHERE server_id = $1 AND kind = 'install'", [id])).toHaveLength(0);
    const ok = await t.request({ method: 'POST', url, body: { ...installBody, postInstallScript: '#!/bin/sh\napt-get -y install nginx\n' } });
    expect(ok.status).toBe(202);
    const [row] = await query<{ params: { postInstallScript: string } }>(t.db.url, 'SELECT params FROM jobs WHERE id = $1', [ok.json.id]);
    expect(row.params.postInstallScript).toBe('#!/bin/sh\napt-get -y install nginx\n');
  });

  it('takes installer callbacks only with the job\'s token', async () => {
    const id = await availableServer();
    const job = (await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: installBody })).json;
    const wrong = await t.request({ method: 'POST', url: `/api/v1/install-callbacks/${job.id}`, token: '', body: { token: 'x'.repeat(32), status: 'done' } });
    expect(wrong.status).toBe(401);
    expect(wrong.json.error).toMatchObject({ code: 'bad_callback_token', field: 'token' });
    const right = await t.request({ method: 'POST', url: `/api/v1/install-callbacks/${job.id}`, token: '', body: { token: await install.callbackToken(job.id), status: 'started' } });
    expect(right.status).toBe(202);
  });
});

describe('install jobs in a worker', () => {
  let runner: JobRunner;
  beforeAll(async () => {
    // The requests above left jobs waiting for installers that will never call: end them first.
    for (const j of (await jobs.list({ kind: 'install' }, 100)).items) if (j.state === 'queued' || j.state === 'running') await jobs.cancel(j.id);
    runner = new JobRunner(t.app.get(Database), t.app.get(JobRepository), t.app.get(JobRegistry), t.app.get(JobQueue), pino({ level: 'silent' }), { allSiteCodes: async () => ['lab'], heartbeatMs: 200, staleAfterSeconds: 3 });
    await runner.start();
  });
  afterAll(() => runner?.stop());

  it('installs: deploying, installer callback, active', async () => {
    const id = await availableServer();
    const job = await install.request(id, { ...installBody, sshKeys: [KEY], diskLayout: 'single', network: { mode: 'dhcp' }, queue: false, installerTimeoutMinutes: 5 });
    await until(() => jobs.get(job.id), (j) => j.tasks!.find((x) => x.name === 'wait-for-installer')!.state === 'waiting');
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('deploying');
    await install.callback(job.id, await install.callbackToken(job.id), 'done', 'debian-installer finished');
    // The shipped preseed writes the first-boot report: the job waits for the installed system.
    await until(() => jobs.get(job.id), (j) => j.tasks!.find((x) => x.name === 'wait-for-first-boot')!.state === 'waiting');
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('deploying');
    await install.callback(job.id, await install.callbackToken(job.id), 'booted', 'first boot of web1');
    const done = await until(() => jobs.get(job.id), (j) => j.state === 'succeeded');
    expect(done.tasks!.every((x) => x.state === 'succeeded')).toBe(true);
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('active');
    const history = (await t.request({ url: `/api/v1/servers/${id}/history` })).json;
    expect(history.slice(-2).map((h: { to: string; cause: { type: string; id: string } }) => `${h.to}:${h.cause.type}:${h.cause.id}`)).toEqual([`deploying:job:${job.id}`, `active:job:${job.id}`]);
  });

  it('fails the job and the server when the installer reports a failure, leaving it to boot from disk', async () => {
    const id = await availableServer();
    const job = await install.request(id, { ...installBody, sshKeys: [KEY], diskLayout: 'single', network: { mode: 'dhcp' }, queue: false, installerTimeoutMinutes: 5 });
    await until(() => jobs.get(job.id), (j) => j.tasks!.find((x) => x.name === 'wait-for-installer')!.state === 'waiting');
    await install.callback(job.id, await install.callbackToken(job.id), 'failed', 'no disk found');
    const failed = await until(() => jobs.get(job.id), (j) => j.state === 'failed');
    expect(failed.error).toContain('installer reported a failure: no disk found');
    const server = (await t.request({ url: `/api/v1/servers/${id}` })).json;
    expect(server).toMatchObject({ state: 'failed', lastError: expect.stringContaining('no disk found') });
    expect((await jobs.logs(job.id)).map((l) => l.message)).toContain('server left booting from disk, marked failed');
  });

  describe('from an image', () => {
    // An image file on this agent, and an HTTP server another copy is fetched from.
    const dir = mkdtempSync(join(tmpdir(), 'racksmith-install-img-'));
    const content = Buffer.alloc(2 ** 20, 3);
    const SHA = createHash('sha256').update(content).digest('hex');
    writeFileSync(join(dir, 'deb-small.raw.gz'), content);
    const http = createServer((_req, res) => res.writeHead(200).end(content));
    let diskModel: string;
    let url: string;
    const putImage = (name: string, body: Record<string, unknown>) =>
      t.request({ method: 'PUT', url: `/api/v1/images/${name}`, body: { os: 'debian-12', file: join(dir, `${name}.raw.gz`), sha256: SHA, diskBytes: 2 ** 31, ...body } });
    const callback = (jobId: string, token: string, status: string) => t.request({ method: 'POST', url: `/api/v1/install-callbacks/${jobId}`, token: '', body: { token, status } });
    const taskState = async (jobId: string, name: string) => (await jobs.get(jobId)).tasks!.find((x) => x.name === name)!.state;
    afterAll(async () => {
      await new Promise((r) => http.close(r));
      rmSync(dir, { recursive: true, force: true });
    });
    beforeAll(async () => {
      await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
      url = `http://127.0.0.1:${(http.address() as { port: number }).port}/deb.raw.gz`;
      diskModel = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: '1U-4G', heightU: 1, bmcDriver: 'fake', disks: [{ kind: 'ssd', sizeGb: 4, count: 2 }] } })).json.id;
      expect((await putImage('deb-small', {})).status).toBe(201);
      expect((await putImage('deb-huge', { diskBytes: 5e9 })).status).toBe(201);
      expect((await putImage('deb-off', { enabled: false })).status).toBe(201);
    });
    async function diskServer(): Promise<string> {
      const id = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: `rs-img-${++n}`, role: 'rented-server', modelId: diskModel, bmc: { address: '127.0.0.2' } } })).json.id;
      await t.request({ method: 'POST', url: `/api/v1/servers/${id}/transition`, body: { to: 'available' } });
      return id;
    }

    it('refuses an unknown, disabled, other-OS or too-big image before any job exists', async () => {
      const id = await diskServer();
      const ask = (body: Record<string, unknown>) => t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: { ...installBody, ...body } });
      for (const [body, says] of [
        [{ image: 'nope' }, 'no image nope'],
        [{ image: 'deb-off' }, 'disabled'],
        [{ image: 'deb-small', os: 'rocky-9' }, 'holds debian-12, not rocky-9'],
      ] as const) {
        const res = await ask(body);
        expect(res.status).toBe(400);
        expect(res.json.error).toMatchObject({ code: 'validation_failed', field: 'image', message: expect.stringContaining(says) });
      }
      const big = await ask({ image: 'deb-huge' });
      expect(big.status).toBe(409);
      expect(big.json.error).toMatchObject({ code: 'disk_too_small', details: { diskBytes: 4e9, imageBytes: 5e9 } });
      const [{ count }] = await query<{ count: string }>(t.db.url, 'SELECT count(*) FROM jobs WHERE server_id = $1', [id]);
      expect(Number(count)).toBe(0);
      expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('available');
    });

    it('ends active only when the installed system phones home: after done, once, with the job\'s token', async () => {
      const id = await diskServer();
      const job = await install.request(id, { ...installBody, image: 'deb-small', diskLayout: 'single', network: { mode: 'dhcp' }, queue: false, installerTimeoutMinutes: 5 });
      const token = await install.callbackToken(job.id);
      await until(() => taskState(job.id, 'wait-for-installer'), (s) => s === 'waiting');
      // A first boot before the image was written is not believed.
      const early = await callback(job.id, token, 'booted');
      expect(early.status).toBe(409);
      expect(early.json.error.code).toBe('not_deployed');
      expect((await callback(job.id, token, 'done')).status).toBe(202);
      await until(() => taskState(job.id, 'wait-for-first-boot'), (s) => s === 'waiting');
      expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('deploying');
      const wrong = await callback(job.id, 'x'.repeat(32), 'booted');
      expect(wrong.status).toBe(401);
      expect(wrong.json.error).toMatchObject({ code: 'bad_callback_token', field: 'token' });
      // Two first boots at once (a reboot loop, a replayed request): one is taken.
      const pair = await Promise.all([callback(job.id, token, 'booted'), callback(job.id, token, 'booted')]);
      expect(pair.map((r) => r.status).sort()).toEqual([202, 409]);
      expect(pair.find((r) => r.status === 409)!.json.error).toMatchObject({ code: 'callback_used', details: { status: 'booted' } });
      const done = await until(() => jobs.get(job.id), (j) => j.state === 'succeeded');
      expect(done.tasks!.map((x) => x.state)).toEqual(Array(9).fill('succeeded'));
      expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('active');
      const [{ count }] = await query<{ count: string }>(t.db.url, "SELECT count(*) FROM install_callbacks WHERE job_id = $1 AND status = 'booted'", [job.id]);
      expect(Number(count)).toBe(1);
      // After the job: the token is spent.
      expect((await callback(job.id, token, 'booted')).json.error).toMatchObject({ code: 'job_finished', details: { state: 'succeeded' } });
      // An install whose template writes no first-boot report (Rocky's, today) has none to take.
      const plain = await install.request(await availableServer(), { ...installBody, os: 'rocky-9', diskLayout: 'single', network: { mode: 'dhcp' }, queue: false, installerTimeoutMinutes: 5 });
      const refused = await callback(plain.id, await install.callbackToken(plain.id), 'booted');
      expect(refused.json.error.code).toBe('first_boot_not_expected');
      await jobs.cancel(plain.id);
    });

    it('fetches an image this agent lacks from its url before touching the server, and stops at a wrong hash with the server untouched', async () => {
      expect((await putImage('deb-fetched', { url })).status).toBe(201);
      const id = await diskServer();
      const job = await install.request(id, { ...installBody, image: 'deb-fetched', diskLayout: 'single', network: { mode: 'dhcp' }, queue: false, installerTimeoutMinutes: 5 });
      await until(() => taskState(job.id, 'wait-for-installer'), (s) => s === 'waiting');
      expect((await jobs.logs(job.id)).map((l) => l.message)).toContain(`image deb-fetched: fetched 1 MiB from ${url}, SHA-256 ok`);
      expect(readFileSync(join(dir, 'deb-fetched.raw.gz')).equals(content)).toBe(true);
      await jobs.cancel(job.id);

      expect((await putImage('deb-corrupt', { url, sha256: 'cd'.repeat(32) })).status).toBe(201);
      const other = await diskServer();
      const bad = await install.request(other, { ...installBody, image: 'deb-corrupt', diskLayout: 'single', network: { mode: 'dhcp' }, queue: false, installerTimeoutMinutes: 5 });
      const failed = await until(() => jobs.get(bad.id), (j) => j.state === 'failed');
      expect(failed.error).toMatch(/image deb-corrupt: .* with SHA-256 [0-9a-f]{64}, not (cd){32}; nothing was kept/);
      expect(failed.tasks!.map((x) => `${x.name}:${x.state}`).slice(0, 2)).toEqual(['stage-image:failed', 'mark-deploying:cancelled']);
      expect(existsSync(join(dir, 'deb-corrupt.raw.gz'))).toBe(false);
      expect((await t.request({ url: `/api/v1/servers/${other}` })).json.state).toBe('available');
    });

    it('fails a server that never phones home after the deadline, with the reason and a task in the site\'s work queue', async () => {
      const id = await diskServer();
      const job = await install.request(id, { ...installBody, image: 'deb-small', diskLayout: 'single', network: { mode: 'dhcp' }, queue: false, installerTimeoutMinutes: 5, firstBootTimeoutMinutes: 1 });
      await until(() => taskState(job.id, 'wait-for-installer'), (s) => s === 'waiting');
      await install.callback(job.id, await install.callbackToken(job.id), 'done');
      await until(() => taskState(job.id, 'wait-for-first-boot'), (s) => s === 'waiting');
      // The minute passes: the wait began two minutes ago.
      await query(t.db.url, "UPDATE job_tasks SET started_at = now() - interval '2 minutes' WHERE job_id = $1 AND name = 'wait-for-first-boot'", [job.id]);
      const failed = await until(() => jobs.get(job.id), (j) => j.state === 'failed');
      expect(failed.error).toContain('did not phone home within 1 minutes');
      expect((await t.request({ url: `/api/v1/servers/${id}` })).json).toMatchObject({ state: 'failed', lastError: expect.stringContaining('did not phone home') });
      const queue = (await t.request({ url: '/api/v1/sites/lab/work-queue' })).json;
      const items = Array.isArray(queue) ? queue : queue.items;
      expect(items).toContainEqual(expect.objectContaining({ kind: 'automation-failure', title: expect.stringContaining(`look at job ${job.id}`), ref: { type: 'server', id } }));
    });
  });

  it('is a CLI too: racksmith install, then jobs watch to the end', async () => {
    const id = await availableServer();
    const env = { DATABASE_URL: t.db.url, RACKSMITH_SECRET_KEY: SECRET_KEY };
    const bad = await runCli(['install', id, '--os', 'debian-12', '--hostname', 'x.example'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('sshKeys: give sshKeys and/or one of rootPassword, rootPasswordHash');
    const queued = await runCli(['install', id, '--os', 'debian-12', '--hostname', 'cli1.example.com', '--ssh-key', KEY, '--json'], env);
    expect(queued.code).toBe(0);
    const job = JSON.parse(queued.stdout);
    const watch = runCli(['jobs', 'watch', job.id], env, 60_000);
    await until(() => jobs.get(job.id), (j) => j.tasks!.find((x) => x.name === 'wait-for-installer')!.state === 'waiting');
    await finish(job.id);
    const watched = await watch;
    expect(watched.code).toBe(0);
    expect(watched.stdout).toContain('[####################] 9/9 succeeded');
    expect(watched.stdout).toContain('waiting for the installer to call back');
    expect(watched.stdout).toMatch(/\] 6\/9 wait-for-installer succeeded/);
    expect(watched.stdout).toContain('job succeeded');
  }, 90_000);

  it('cancels an install into a known state', async () => {
    const id = await availableServer();
    const job = await install.request(id, { ...installBody, sshKeys: [KEY], diskLayout: 'single', network: { mode: 'dhcp' }, queue: false, installerTimeoutMinutes: 5 });
    await until(() => jobs.get(job.id), (j) => j.tasks!.find((x) => x.name === 'wait-for-installer')!.state === 'waiting');
    await t.request({ method: 'POST', url: `/api/v1/jobs/${job.id}/cancel` });
    await until(() => jobs.get(job.id), (j) => j.state === 'cancelled');
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json).toMatchObject({ state: 'failed', lastError: 'install cancelled' });
  });
});

describe('a worker killed mid-install', () => {
  const workers: Served[] = [];
  afterAll(async () => {
    for (const w of workers) await w.stop('SIGKILL');
  });

  it('is replaced by another worker process that carries on with the waiting install', async () => {
    const env = { DATABASE_URL: t.db.url, RACKSMITH_SECRET_KEY: SECRET_KEY, RACKSMITH_INVENTORY_SEED: '', RACKSMITH_JOB_HEARTBEAT_TIMEOUT: '3' };
    const a = await startServe(env, ['--role', 'agent', '--site', 'lab']);
    workers.push(a);
    const id = await availableServer();
    const job = (await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: installBody })).json;
    const waiting = await until(() => jobs.get(job.id), (j) => j.tasks!.find((x) => x.name === 'wait-for-installer')!.state === 'waiting');
    const [{ worker }] = await query<{ worker: string }>(t.db.url, "SELECT worker FROM job_tasks WHERE job_id = $1 AND name = 'wait-for-installer'", [job.id]);
    expect(worker).toContain(`:${a.proc.pid}:`);
    expect(waiting.tasks!.slice(0, 4).every((x) => x.state === 'succeeded')).toBe(true);

    expect(await a.stop('SIGKILL')).toBeNull();
    const b = await startServe(env, ['--role', 'agent', '--site', 'lab']);
    workers.push(b);
    // The waiting task holds no worker: the next check is B's.
    await until(
      () => query<{ worker: string | null; waits: number }>(t.db.url, "SELECT worker, waits FROM job_tasks WHERE job_id = $1 AND name = 'wait-for-installer'", [job.id]),
      (rows) => (rows[0].worker ?? '').includes(`:${b.proc.pid}:`),
    );
    await t.request({ method: 'POST', url: `/api/v1/install-callbacks/${job.id}`, token: '', body: { token: await install.callbackToken(job.id), status: 'done' } });
    await t.request({ method: 'POST', url: `/api/v1/install-callbacks/${job.id}`, token: '', body: { token: await install.callbackToken(job.id), status: 'booted' } });
    const done = await until(() => jobs.get(job.id), (j) => j.state === 'succeeded');
    // Every task ran once: waiting is not an attempt.
    expect(done.tasks!.map((x) => `${x.name}:${x.attempts}`)).toEqual(['stage-image:1', 'mark-deploying:1', 'power-off:1', 'pxe-once:1', 'power-on:1', 'wait-for-installer:1', 'boot-from-disk:1', 'wait-for-first-boot:1', 'mark-active:1']);
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('active');
    expect(await b.stop('SIGTERM')).toBe(0);
  }, 120_000);
});

describe('separate worker processes', () => {
  it('share the work, and a job is cancelled, retried and streamed while another process runs it', async () => {
    const env = { DATABASE_URL: t.db.url, RACKSMITH_SECRET_KEY: SECRET_KEY, RACKSMITH_INVENTORY_SEED: '' };
    const one = await startServe(env, ['--role', 'agent', '--site', 'lab']);
    const two = await startServe(env, ['--role', 'agent', '--site', 'lab']);
    try {
      const ids = await Promise.all(Array.from({ length: 8 }, () => availableServer()));
      const started = await Promise.all(ids.map(async (id) => (await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: installBody })).json.id as string));
      await until(() => Promise.all(started.map((j) => jobs.get(j))), (all) => all.every((j) => j.tasks!.find((x) => x.name === 'wait-for-installer')!.state === 'waiting'));
      const workers = await query<{ worker: string }>(t.db.url, "SELECT DISTINCT worker FROM job_tasks WHERE worker IS NOT NULL AND job_id = ANY($1)", [started]);
      const pids = new Set(workers.map((w) => w.worker.split(':')[1]));
      expect(pids).toEqual(new Set([String(one.proc.pid), String(two.proc.pid)]));

      // Cancel one through the API: the worker that runs it stops it and leaves the server failed.
      const [victim, ...rest] = started;
      expect((await t.request({ method: 'POST', url: `/api/v1/jobs/${victim}/cancel` })).status).toBe(201);
      const cancelled = await until(() => jobs.get(victim), (j) => j.state === 'cancelled');
      expect((await t.request({ url: `/api/v1/servers/${cancelled.serverId}` })).json).toMatchObject({ state: 'failed', lastError: 'install cancelled' });

      // Retry it from the task that did not finish; follow it as SSE from this process while a worker runs it.
      expect((await t.request({ method: 'POST', url: `/api/v1/jobs/${victim}/retry` })).json.state).toBe('queued');
      await until(() => jobs.get(victim), (j) => j.tasks!.find((x) => x.name === 'wait-for-installer')!.state === 'waiting');
      // The installer never called: the retry boots the server into it again (from power-off).
      const retried = await jobs.get(victim);
      expect(retried.tasks!.map((x) => x.attempts)).toEqual([1, 1, 1, 1, 1, 1, 0, 0, 0]);
      expect((await jobs.logs(victim)).filter((l) => l.message.startsWith('power-off: attempt')).length).toBe(2);
      expect((await t.request({ url: `/api/v1/servers/${cancelled.serverId}` })).json.state).toBe('deploying');
      await t.app.listen({ host: '127.0.0.1', port: 0 }).catch(() => undefined);
      const base = `http://127.0.0.1:${(t.app.getHttpServer().address() as { port: number }).port}`;
      const stream = fetch(`${base}/api/v1/jobs/${victim}/events`, { headers: { authorization: `Bearer ${BOOTSTRAP}` } }).then((r) => r.text());
      for (const j of [victim, ...rest]) await finish(j);
      const sse = await stream;
      for (const name of ['wait-for-installer', 'boot-from-disk', 'mark-active']) expect(sse).toContain(`"name":"${name}","state":"succeeded"`);
      expect(sse.trim().split('\n').slice(-1)[0]).toBe('data: {"state":"succeeded","error":null}');
      await until(() => Promise.all(started.map((j) => jobs.get(j))), (all) => all.every((j) => j.state === 'succeeded'));
    } finally {
      expect(await one.stop()).toBe(0);
      expect(await two.stop()).toBe(0);
    }
  }, 120_000);
});

describe('metrics', () => {
  it('exports jobs, servers and open work by state', async () => {
    const text = (await t.request({ url: '/metrics', token: '' })).text;
    expect(text).toMatch(/racksmith_jobs\{[^}]*kind="install"[^}]*state="succeeded"[^}]*\} [1-9]/);
    expect(text).toMatch(/racksmith_servers\{[^}]*state="active"[^}]*maintenance="false"[^}]*\} [1-9]/);
    expect(text).toContain('# TYPE racksmith_work_tasks_open gauge');
  });
});

describe('many installs', () => {
  it('lets exactly one of 20 concurrent install requests for a server in', async () => {
    const id = await availableServer();
    const results = await Promise.all(Array.from({ length: 20 }, () => t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: installBody })));
    expect(results.filter((r) => r.status === 202)).toHaveLength(1);
    for (const r of results.filter((x) => x.status !== 202)) expect(r.json.error.code).toBe('server_busy');
  });

  it('installs many servers in one request, refusing each bad one on its own', async () => {
    const [a, b] = [await availableServer(), await availableServer()];
    await t.request({ method: 'PUT', url: `/api/v1/servers/${b}/maintenance`, body: { enabled: true } });
    const res = await t.request({ method: 'POST', url: '/api/v1/servers/install', body: { os: 'ubuntu-24.04', sshKeys: [KEY], servers: [{ id: a, hostname: 'a1.example.com' }, { id: b, hostname: 'b1.example.com' }] } });
    expect(res.status).toBe(202);
    expect(res.json.accepted.map((x: { serverId: string }) => x.serverId)).toEqual([a]);
    expect(res.json.refused).toEqual([{ serverId: b, error: { code: 'in_maintenance', message: expect.any(String) } }]);
    const bad = await t.request({ method: 'POST', url: '/api/v1/servers/install', body: { os: 'ubuntu-24.04', sshKeys: [KEY], servers: [] } });
    expect(bad.json.error).toMatchObject({ code: 'validation_failed', field: 'servers' });
  });
});

describe('site routing', () => {
  it('leaves a site\'s jobs to the workers of that site', async () => {
    await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'far', name: 'Far away' } });
    const env = { DATABASE_URL: t.db.url, RACKSMITH_SECRET_KEY: SECRET_KEY, RACKSMITH_INVENTORY_SEED: '' };
    const farAgent = await startServe(env, ['--role', 'agent', '--site', 'far']);
    try {
      const id = await availableServer();
      const job = (await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: installBody })).json;
      await new Promise((r) => setTimeout(r, 3000));
      expect((await jobs.get(job.id)).state).toBe('queued');
      const labAgent = await startServe(env, ['--role', 'agent', '--site', 'lab']);
      try {
        await until(() => jobs.get(job.id), (j) => j.state === 'running');
        const [{ worker }] = await query<{ worker: string }>(t.db.url, 'SELECT worker FROM job_tasks WHERE job_id = $1 AND attempts > 0 ORDER BY seq LIMIT 1', [job.id]);
        expect(worker).toContain(`:${labAgent.proc.pid}:`);
        await jobs.cancel(job.id);
        await until(() => jobs.get(job.id), (j) => j.state === 'cancelled');
      } finally {
        await labAgent.stop();
      }
    } finally {
      await farAgent.stop();
    }
  }, 90_000);
});
