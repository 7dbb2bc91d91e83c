import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A task that waits for something outside (an installer's callback) is `waiting`: it holds no
 * worker while it waits, and is looked at again when woken or when its next check is due.
 * `waits` counts those checks (they are not attempts).
 */
export class TaskWaiting1732580000000 implements MigrationInterface {
  name = 'TaskWaiting1732580000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE job_tasks DROP CONSTRAINT job_tasks_state_check');
    await q.query(`ALTER TABLE job_tasks ADD CONSTRAINT job_tasks_state_check CHECK (state IN ('pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled'))`);
    await q.query('ALTER TABLE job_tasks ADD COLUMN waits int NOT NULL DEFAULT 0');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`UPDATE job_tasks SET state = 'pending' WHERE state = 'waiting'`);
    await q.query('ALTER TABLE job_tasks DROP COLUMN waits');
    await q.query('ALTER TABLE job_tasks DROP CONSTRAINT job_tasks_state_check');
    await q.query(`ALTER TABLE job_tasks ADD CONSTRAINT job_tasks_state_check CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled'))`);
  }
}
