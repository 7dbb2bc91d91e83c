import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';

export interface BmcCredentialRow {
  name: string;
  secret_enc: string;
  created_at: Date;
  updated_at: Date;
  used_by: number;
}

/** Named BMC credentials (bmc_credentials): a secret many BMCs share, sealed at rest. */
@Injectable()
export class BmcCredentialsRepository {
  constructor(private readonly db: Database) {}

  list(): Promise<BmcCredentialRow[]> {
    return this.db.rows<BmcCredentialRow>(
      `SELECT c.*, (SELECT count(*)::int FROM devices d WHERE d.bmc_password_ref = c.name) AS used_by FROM bmc_credentials c ORDER BY c.name`,
    );
  }

  async names(): Promise<Set<string>> {
    return new Set((await this.db.rows<{ name: string }>('SELECT name FROM bmc_credentials')).map((r) => r.name));
  }

  async get(name: string): Promise<BmcCredentialRow | null> {
    const [row] = await this.db.rows<BmcCredentialRow>('SELECT c.*, 0 AS used_by FROM bmc_credentials c WHERE c.name = $1', [name]);
    return row ?? null;
  }

  /** Insert or replace; true when it was new. The BMCs using it are unchecked again (new credentials). */
  async put(name: string, sealed: string): Promise<boolean> {
    const [row] = await this.db.rows<{ created: boolean }>(
      `INSERT INTO bmc_credentials (name, secret_enc) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET secret_enc = EXCLUDED.secret_enc, updated_at = now()
       RETURNING (xmax = 0) AS created`,
      [name, sealed],
    );
    await this.db.rows('UPDATE devices SET bmc_checked_at = NULL, bmc_check_failed_at = NULL WHERE bmc_password_ref = $1', [name]);
    return !!row?.created;
  }

  async usedBy(name: string): Promise<number> {
    const [row] = await this.db.rows<{ n: number }>('SELECT count(*)::int AS n FROM devices WHERE bmc_password_ref = $1', [name]);
    return row?.n ?? 0;
  }

  async remove(name: string): Promise<boolean> {
    return (await this.db.rows('DELETE FROM bmc_credentials WHERE name = $1 RETURNING name', [name])).length > 0;
  }
}
