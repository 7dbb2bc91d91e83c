import pino from 'pino';
import { BOOTSTRAP, startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';
import { until } from '../support/wait';
import { JobRegistry } from '../../src/jobs/job-registry';
import { JobRepository } from '../../src/jobs/job.repository';
import { JobQueue } from '../../src/jobs/job-queue';
import { JobRunner } from '../../src/jobs/job-runner';
import { JobService } from '../../src/jobs/job.service';
import { Database } from '../../src/database/database';
import { PgListener } from '../../src/database/pg-listener';
import { jobEvents, type JobEvent } from '../../src/jobs/job-events';
import { JOB_CHANNEL } from '../../src/jobs/job-streams.service';
import { Client } from 'pg';

/**
 * The job engine against real PostgreSQL and graphile-worker, with job kinds defined here:
 * the engine is generic; install, wipe and the rest define their own kinds.
 */
let t: TestApp;
let jobs: JobService;
let runner: JobRunner;
let site: { id: string; code: string };
let modelId: string;
const calls: string[] = [];
let flaky = 0;
let gate: (() => void) | undefined;
let base: string | undefined;

beforeAll(async () => {
  t = await startTestApp();
  jobs = t.app.get(JobService);
  const registry = t.app.get(JobRegistry);
  registry.define({
    kind: 'test-ok',
    hardware: true,
    tasks: ['power-off', 'pxe-once', 'power-on'].map((name) => ({ name, run: async (ctx) => { calls.push(`${ctx.jobId}:${name}`); await ctx.log(`did ${name}`); } })),
  });
  registry.define({
    kind: 'test-flaky',
    hardware: false,
    tasks: [{ name: 'flaky', backoffMs: 50, maxAttempts: 3, run: async () => { if (++flaky < 3) throw new Error(`flake ${flaky}`); } }],
  });
  registry.define({
    kind: 'test-broken',
    hardware: true,
    tasks: [
      { name: 'first', run: async () => undefined },
      { name: 'broken', backoffMs: 20, maxAttempts: 2, run: async (ctx) => { if (!ctx.params.fixed) throw new Error('BMC said no'); } },
      { name: 'last', run: async () => undefined },
    ],
  });
  registry.define({
    kind: 'test-slow',
    hardware: true,
    tasks: [
      { name: 'wait-for-callback', timeoutMs: 10_000, run: (ctx) => new Promise<void>((resolve, reject) => { gate = resolve; ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)); }) },
      { name: 'after', run: async () => undefined },
    ],
  });
  registry.define({ kind: 'test-timeout', hardware: false, tasks: [{ name: 'hangs', timeoutMs: 200, maxAttempts: 1, run: () => new Promise<void>(() => undefined) }] });

  const queue = t.app.get(JobQueue);
  runner = new JobRunner(t.app.get(Database), t.app.get(JobRepository), registry, queue, pino({ level: 'silent' }), { allSiteCodes: async () => ['lab'], heartbeatMs: 200, staleAfterSeconds: 2 });
  await runner.start();
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
  site = { id: (await t.request({ url: '/api/v1/sites/lab' })).json.id, code: 'lab' };
  modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: '1U', heightU: 1 } })).json.id;
}, 60_000);
afterAll(async () => {
  await runner?.stop();
  await t?.close();
});

let n = 0;
const server = async () => (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: `srv-${++n}`, role: 'rented-server', modelId } })).json.id as string;

const settled = (id: string) => until(() => jobs.get(id), (j) => ['succeeded', 'failed', 'cancelled'].includes(j.state));

describe('job engine', () => {
  it('runs the tasks in order and records each one', async () => {
    const job = await jobs.create('test-ok', { siteId: site.id, siteCode: site.code, serverId: await server() }, {});
    expect(job.state).toBe('queued');
    const done = await settled(job.id);
    expect(done.state).toBe('succeeded');
    expect(done.tasks!.map((x) => `${x.name}:${x.state}:${x.attempts}`)).toEqual(['power-off:succeeded:1', 'pxe-once:succeeded:1', 'power-on:succeeded:1']);
    expect(calls.filter((c) => c.startsWith(job.id))).toEqual([`${job.id}:power-off`, `${job.id}:pxe-once`, `${job.id}:power-on`]);
    const logs = (await jobs.logs(job.id)).map((l) => l.message);
    expect(logs).toContain('did pxe-once');
    expect(logs[logs.length - 1]).toBe('job succeeded');
  });

  it('retries a failing task with backoff until it works', async () => {
    const job = await jobs.create('test-flaky', { siteId: site.id, siteCode: site.code }, {});
    const done = await settled(job.id);
    expect(done.state).toBe('succeeded');
    expect(done.tasks![0].attempts).toBe(3);
    const warnings = (await jobs.logs(job.id)).filter((l) => l.level === 'warn').map((l) => l.message);
    expect(warnings).toEqual(['flaky: failed (flake 1); retry in 50 ms', 'flaky: failed (flake 2); retry in 100 ms']);
  });

  it('fails a job whose task keeps failing, and retries it from that task', async () => {
    const job = await jobs.create('test-broken', { siteId: site.id, siteCode: site.code, serverId: await server() }, {});
    const failed = await settled(job.id);
    expect(failed).toMatchObject({ state: 'failed', error: 'broken failed after 2 attempts: BMC said no' });
    expect(failed.tasks!.map((x) => x.state)).toEqual(['succeeded', 'failed', 'cancelled']);
    await query(t.db.url, `UPDATE jobs SET params = '{"fixed": true}' WHERE id = $1`, [job.id]);
    await jobs.retry(job.id);
    const done = await settled(job.id);
    expect(done.state).toBe('succeeded');
    // The first task was not run again.
    expect(done.tasks!.map((x) => `${x.name}:${x.attempts}`)).toEqual(['first:1', 'broken:1', 'last:1']);
    await expect(jobs.retry(job.id)).rejects.toMatchObject({ code: 'job_not_failed' });
  });

  it('times a task out', async () => {
    const job = await jobs.create('test-timeout', { siteId: site.id, siteCode: site.code }, {});
    const done = await settled(job.id);
    expect(done).toMatchObject({ state: 'failed', error: 'hangs failed after 1 attempts: timed out after 200 ms' });
  });

  it('keeps one hardware job per server: refuses a second, or queues it behind when asked', async () => {
    const srv = await server();
    const first = await jobs.create('test-slow', { siteId: site.id, siteCode: site.code, serverId: srv }, {});
    await until(() => jobs.get(first.id), (j) => j.state === 'running');
    await expect(jobs.create('test-ok', { siteId: site.id, siteCode: site.code, serverId: srv }, {})).rejects.toMatchObject({ code: 'server_busy', details: { jobId: first.id } });
    const second = await jobs.create('test-ok', { siteId: site.id, siteCode: site.code, serverId: srv }, {}, { queue: true });
    expect(second).toMatchObject({ state: 'queued', waitsFor: first.id });
    gate!();
    expect((await settled(first.id)).state).toBe('succeeded');
    expect((await settled(second.id)).state).toBe('succeeded');
  });

  it('lets exactly one of 20 concurrent jobs for a server in', async () => {
    const srv = await server();
    // A job that holds the server until let go (a quick one may end, and free it, within the burst).
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => jobs.create('test-slow', { siteId: site.id, siteCode: site.code, serverId: srv }, {})));
    const accepted = results.filter((r) => r.status === 'fulfilled');
    expect(accepted).toHaveLength(1);
    for (const r of results.filter((x) => x.status === 'rejected')) expect((r as PromiseRejectedResult).reason.code).toBe('server_busy');
    const only = (accepted[0] as PromiseFulfilledResult<{ id: string }>).value.id;
    await until(() => jobs.get(only), (j) => j.state === 'running');
    gate!();
    expect((await settled(only)).state).toBe('succeeded');
  });

  it('cancels a running job cooperatively and leaves the rest undone', async () => {
    const job = await jobs.create('test-slow', { siteId: site.id, siteCode: site.code, serverId: await server() }, {});
    await until(() => jobs.get(job.id), (j) => j.state === 'running');
    await jobs.cancel(job.id);
    const done = await settled(job.id);
    expect(done.state).toBe('cancelled');
    expect(done.tasks!.map((x) => x.state)).toEqual(['cancelled', 'cancelled']);
    await expect(jobs.cancel(job.id)).rejects.toMatchObject({ code: 'job_finished' });
  });

  it('resumes a task whose worker died', async () => {
    const job = await jobs.create('test-slow', { siteId: site.id, siteCode: site.code, serverId: await server() }, {});
    await until(() => jobs.get(job.id), (j) => j.state === 'running');
    // A worker that vanished mid-task: its heartbeat stops (here: set into the past).
    await query(t.db.url, "UPDATE job_tasks SET worker = 'dead-worker', heartbeat_at = now() - interval '1 minute' WHERE job_id = $1 AND seq = 0", [job.id]);
    gate = undefined;
    await until(() => Promise.resolve(gate), (g) => g !== undefined);
    gate!();
    const done = await settled(job.id);
    expect(done.state).toBe('succeeded');
    expect(done.tasks![0].attempts).toBe(2);
    expect((await jobs.logs(job.id)).map((l) => l.message)).toContain('task 0 was running on a worker that stopped answering; resuming it');
  });
});

describe('job progress by PostgreSQL notifications', () => {
  /** A running job no worker will touch (no queue entry): the test writes its rows itself. */
  const orphanJob = async () => (await query<{ id: string }>(t.db.url, "INSERT INTO jobs (kind, site_id, state, created_by) VALUES ('test-stream', $1, 'running', 'test') RETURNING id", [site.id]))[0]!.id;
  const logLine = (jobId: string, message: string) => query(t.db.url, "INSERT INTO job_logs (job_id, level, message) VALUES ($1, 'info', $2)", [jobId, message]);

  it('the job tables notify a log line and a change of state, never a heartbeat', async () => {
    const id = await orphanJob();
    await query(t.db.url, "INSERT INTO job_tasks (job_id, seq, name, max_attempts, timeout_ms) VALUES ($1, 0, 'step', 3, 1000)", [id]);
    const c = new Client({ connectionString: t.db.url });
    await c.connect();
    const heard: string[] = [];
    c.on('notification', (m) => heard.push(`${m.channel}:${m.payload}`));
    await c.query(`LISTEN ${JOB_CHANNEL}`);
    try {
      await query(t.db.url, 'UPDATE job_tasks SET heartbeat_at = now() WHERE job_id = $1', [id]);
      await query(t.db.url, "UPDATE job_tasks SET state = 'running', worker = 'w' WHERE job_id = $1", [id]);
      await query(t.db.url, 'UPDATE job_tasks SET heartbeat_at = now() WHERE job_id = $1', [id]);
      await logLine(id, 'hello');
      await query(t.db.url, "UPDATE jobs SET state = 'failed', error = 'x', finished_at = now() WHERE id = $1", [id]);
      // Delivered in commit order: a heartbeat's notification would sit among these.
      await until(async () => heard.length, (n) => n >= 3, 5000);
      await new Promise((r) => setTimeout(r, 200));
      expect(heard).toEqual([`${JOB_CHANNEL}:${id}`, `${JOB_CHANNEL}:${id}`, `${JOB_CHANNEL}:${id}`]);
    } finally {
      await c.end();
    }
  });

  it('a stream wakes on a notification with no polling, polls while the LISTEN connection is lost, and listens again', async () => {
    const listener = new PgListener(t.db.url, JOB_CHANNEL, pino({ level: 'silent' }), { connectTimeoutMs: 5000, retryMs: 1500 });
    const id = await orphanJob();
    const seen: JobEvent[] = [];
    let done = false;
    // Polling every minute: only a notification can bring a line within the test's bounds.
    const sub = jobEvents(t.app.get(JobRepository), id, { everyMs: 60_000, safetyMs: 60_000, wakeups: listener }).subscribe({ next: (e) => seen.push(e), complete: () => (done = true) });
    const lines = () => seen.filter((e) => e.type === 'log').map((e) => e.data.message);
    try {
      await until(async () => listener.listening, (l) => l, 5000);
      await until(async () => seen.length, (n) => n >= 1, 5000);
      await logLine(id, 'one');
      await until(async () => lines(), (l) => l.includes('one'), 5000);

      // The connection is cut: the stream hears of it and polls meanwhile (every minute here, so
      // the reconnect's wake-up is what brings the next line), then listens again.
      await query(t.db.url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'racksmith-listen' AND datname = current_database()");
      await until(async () => listener.listening, (l) => !l, 5000);
      await logLine(id, 'two, while down');
      await until(async () => listener.listening, (l) => l, 10_000);
      await until(async () => lines(), (l) => l.includes('two, while down'), 5000);
      await logLine(id, 'three');
      await until(async () => lines(), (l) => l.includes('three'), 5000);

      await query(t.db.url, "UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = $1", [id]);
      await until(async () => done, (d) => d, 5000);
      expect(lines()).toEqual(['one', 'two, while down', 'three']);
      expect(seen[seen.length - 1]).toEqual({ type: 'job', id: expect.any(String), data: { state: 'succeeded', error: null } });
    } finally {
      sub.unsubscribe();
      await listener.close();
    }
  });

  it('without notifications (RACKSMITH_JOB_EVENTS=poll) a stream polls, every line once and in order across a digit boundary of the ids', async () => {
    const id = await orphanJob();
    const seen: string[] = [];
    const sub = jobEvents(t.app.get(JobRepository), id, { everyMs: 100 }).subscribe({ next: (e) => e.type === 'log' && seen.push(String(e.data.message)) });
    try {
      await logLine(id, 'polled');
      await until(async () => seen, (s) => s.includes('polled'), 5000);
      // Ids 9999998 … 10000001 in one read: compared as text, 10000000 would sort before 9999999.
      await query(t.db.url, "SELECT setval(pg_get_serial_sequence('job_logs', 'id'), greatest(9999997, (SELECT max(id) FROM job_logs)))");
      await query(t.db.url, "INSERT INTO job_logs (job_id, level, message) SELECT $1, 'info', 'line ' || i FROM generate_series(1, 4) i", [id]);
      await until(async () => seen, (s) => s.length >= 5, 5000);
      await new Promise((r) => setTimeout(r, 300));
      expect(seen).toEqual(['polled', 'line 1', 'line 2', 'line 3', 'line 4']);
    } finally {
      sub.unsubscribe();
    }
  });
});

describe('jobs over REST', () => {
  it('lists, shows, and streams a job as Server-Sent Events to its end', async () => {
    const job = await jobs.create('test-ok', { siteId: site.id, siteCode: site.code, serverId: await server() }, {});
    // SSE needs a real socket (not fastify.inject): listen and read the stream to its end.
    if (!base) {
      await t.app.listen({ host: '127.0.0.1', port: 0 });
      base = `http://127.0.0.1:${(t.app.getHttpServer().address() as { port: number }).port}`;
    }
    const sse = await fetch(`${base}/api/v1/jobs/${job.id}/events`, { headers: { authorization: `Bearer ${BOOTSTRAP}` } });
    expect(sse.status).toBe(200);
    expect(sse.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = (await sse.text())
      .split('\n\n')
      .filter((b) => b.trim())
      .map((block) => {
        const type = /^event: (.+)$/m.exec(block)?.[1];
        const data = JSON.parse(/^data: (.+)$/m.exec(block)![1]);
        return { type, data };
      });
    const tasks = events.filter((e) => e.type === 'task').map((e) => `${e.data.name}:${e.data.state}`);
    for (const name of ['power-off', 'pxe-once', 'power-on']) expect(tasks).toContain(`${name}:succeeded`);
    expect(events.filter((e) => e.type === 'log').map((e) => e.data.message)).toEqual(expect.arrayContaining(['did power-off', 'did pxe-once', 'did power-on', 'job succeeded']));
    expect(events[events.length - 1]).toEqual({ type: 'job', data: { state: 'succeeded', error: null } });

    const missing = await fetch(`${base}/api/v1/jobs/00000000-0000-4000-8000-000000000000/events`, { headers: { authorization: `Bearer ${BOOTSTRAP}` } });
    expect(missing.status).toBe(404);
    expect((await missing.json()).error.code).toBe('not_found');

    const got = await t.request({ url: `/api/v1/jobs/${job.id}` });
    expect(got.json).toMatchObject({ id: job.id, kind: 'test-ok', state: 'succeeded', site: 'lab' });
    await settled((await jobs.create('test-ok', { siteId: site.id, siteCode: site.code }, {})).id);
    const list = await t.request({ url: `/api/v1/jobs?kind=test-ok&state=succeeded&site=lab&limit=1` });
    expect(list.json.items.length).toBe(1);
    expect(list.json.nextCursor).not.toBeNull();
    const next = await t.request({ url: `/api/v1/jobs?kind=test-ok&state=succeeded&site=lab&limit=1&cursor=${list.json.nextCursor}` });
    expect(next.json.items.map((j: { id: string }) => j.id)).not.toContain(list.json.items[0].id);
    const logs = await t.request({ url: `/api/v1/jobs/${job.id}/logs` });
    expect(logs.json.map((l: { message: string }) => l.message)).toContain('did pxe-once');
  });

  it('cancels and retries through REST, with clear refusals', async () => {
    const job = await jobs.create('test-slow', { siteId: site.id, siteCode: site.code, serverId: await server() }, {});
    await until(() => jobs.get(job.id), (j) => j.state === 'running');
    const early = await t.request({ method: 'POST', url: `/api/v1/jobs/${job.id}/retry` });
    expect(early.status).toBe(409);
    expect(early.json.error).toMatchObject({ code: 'job_not_failed', details: { state: 'running' } });
    expect((await t.request({ method: 'POST', url: `/api/v1/jobs/${job.id}/cancel` })).json.cancelRequested).toBe(true);
    await settled(job.id);
    gate = undefined;
    const retried = await t.request({ method: 'POST', url: `/api/v1/jobs/${job.id}/retry` });
    expect(retried.json.state).toBe('queued');
    await until(() => Promise.resolve(gate), (g) => g !== undefined);
    gate!();
    expect((await settled(job.id)).state).toBe('succeeded');
    expect((await t.request({ url: '/api/v1/jobs/00000000-0000-4000-8000-000000000000' })).status).toBe(404);
    const ro = (await t.request({ method: 'POST', url: '/api/v1/tokens', body: { name: 'viewer', role: 'readonly' } })).json.token;
    expect((await t.request({ method: 'POST', url: `/api/v1/jobs/${job.id}/cancel`, token: ro })).status).toBe(403);
  });
});
