import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';

/** Installer callbacks of install jobs. */
@Injectable()
export class InstallCallbackRepository {
  constructor(private readonly db: Database) {}

  async add(jobId: string, status: string, message: string | null): Promise<void> {
    await this.db.manager().query('INSERT INTO install_callbacks (job_id, status, message) VALUES ($1, $2, $3)', [jobId, status, message]);
  }

  /** The job's last report with this status. */
  async last(jobId: string, status: string): Promise<{ message: string | null } | null> {
    const rows = await this.db.manager().query('SELECT message FROM install_callbacks WHERE job_id = $1 AND status = $2 ORDER BY id DESC LIMIT 1', [jobId, status]);
    return rows[0] ?? null;
  }

  /** The last "done" or "failed" report of the job, if any. */
  async outcome(jobId: string): Promise<{ status: 'done' | 'failed'; message: string | null } | null> {
    const rows = await this.db.manager().query("SELECT status, message FROM install_callbacks WHERE job_id = $1 AND status IN ('done', 'failed') ORDER BY id DESC LIMIT 1", [jobId]);
    return rows[0] ?? null;
  }
}
