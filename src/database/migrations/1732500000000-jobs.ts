import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Jobs: an ordered list of tasks, each with its attempts, times, outcome and log. The queue that
 * wakes workers is graphile-worker's (its own schema); these tables are what a job IS, so an
 * engineer (and a restarted worker) can see exactly where it stands.
 * One hardware job per server: a partial unique index over the active jobs of a server; a job
 * queued behind another names it in waits_for and is not active until that one ends.
 */
export class Jobs1732500000000 implements MigrationInterface {
  name = 'Jobs1732500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE jobs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        kind text NOT NULL,
        site_id uuid NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
        server_id uuid REFERENCES devices (id) ON DELETE RESTRICT,
        state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
        waits_for uuid REFERENCES jobs (id) ON DELETE SET NULL,
        params jsonb NOT NULL DEFAULT '{}'::jsonb,
        error text,
        cancel_requested_at timestamptz,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz,
        CHECK ((state IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
      )`);
    await q.query(`CREATE UNIQUE INDEX jobs_one_active_per_server ON jobs (server_id)
      WHERE server_id IS NOT NULL AND state IN ('queued', 'running') AND waits_for IS NULL`);
    await q.query('CREATE INDEX jobs_state ON jobs (state, created_at)');
    await q.query('CREATE INDEX jobs_server ON jobs (server_id, created_at)');
    await q.query(`
      CREATE TABLE job_tasks (
        job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        seq int NOT NULL CHECK (seq >= 0),
        name text NOT NULL,
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
        attempts int NOT NULL DEFAULT 0,
        max_attempts int NOT NULL CHECK (max_attempts >= 1),
        timeout_ms int NOT NULL CHECK (timeout_ms > 0),
        worker text,
        heartbeat_at timestamptz,
        started_at timestamptz,
        finished_at timestamptz,
        next_attempt_at timestamptz,
        error text,
        PRIMARY KEY (job_id, seq)
      )`);
    await q.query("CREATE INDEX job_tasks_running ON job_tasks (heartbeat_at) WHERE state = 'running'");
    await q.query(`
      CREATE TABLE job_logs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        seq int,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        level text NOT NULL CHECK (level IN ('info', 'warn', 'error')),
        message text NOT NULL
      )`);
    await q.query('CREATE INDEX job_logs_job ON job_logs (job_id, id)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE job_logs, job_tasks, jobs');
  }
}
