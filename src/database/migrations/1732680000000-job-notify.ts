import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Job progress as PostgreSQL notifications: a log line, a task's or a job's change of state
 * notifies channel `racksmith_jobs` with the job's id, at commit, whichever process wrote it.
 * The job-event streams (SSE) wake on them instead of polling; heartbeats notify nothing.
 */
export class JobNotify1732680000000 implements MigrationInterface {
  name = 'JobNotify1732680000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION racksmith_job_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('racksmith_jobs', to_jsonb(NEW) ->> TG_ARGV[0]);
        RETURN NULL;
      END $$`);
    await q.query(`CREATE TRIGGER job_logs_notify AFTER INSERT ON job_logs FOR EACH ROW EXECUTE FUNCTION racksmith_job_notify('job_id')`);
    await q.query(`CREATE TRIGGER job_tasks_notify AFTER UPDATE ON job_tasks FOR EACH ROW
      WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.attempts IS DISTINCT FROM NEW.attempts OR OLD.error IS DISTINCT FROM NEW.error)
      EXECUTE FUNCTION racksmith_job_notify('job_id')`);
    await q.query(`CREATE TRIGGER jobs_notify AFTER UPDATE ON jobs FOR EACH ROW
      WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.error IS DISTINCT FROM NEW.error)
      EXECUTE FUNCTION racksmith_job_notify('id')`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER jobs_notify ON jobs');
    await q.query('DROP TRIGGER job_tasks_notify ON job_tasks');
    await q.query('DROP TRIGGER job_logs_notify ON job_logs');
    await q.query('DROP FUNCTION racksmith_job_notify()');
  }
}
