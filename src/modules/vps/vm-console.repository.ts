import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';

export interface VmGrantRow {
  id: string;
  vm_id: string;
  customer: string;
  console_token_hash: string;
  expires_at: Date;
  created_by: string;
  created_at: Date;
  revoked_at: Date | null;
  revoked_by: string | null;
  revoke_reason: string | null;
}

/** Console grants for VMs. */
@Injectable()
export class VmConsoleRepository {
  constructor(private readonly db: Database) {}

  async get(id: string): Promise<VmGrantRow | undefined> {
    return (await this.db.rows<VmGrantRow>('SELECT * FROM vm_console_grants WHERE id = $1', [id]))[0];
  }

  list(vmId: string, limit: number): Promise<VmGrantRow[]> {
    return this.db.rows<VmGrantRow>('SELECT * FROM vm_console_grants WHERE vm_id = $1 ORDER BY created_at DESC LIMIT $2', [vmId, limit]);
  }

  async insert(g: { vmId: string; customer: string; tokenHash: string; ttlSeconds: number; createdBy: string }): Promise<VmGrantRow> {
    const [row] = await this.db.rows<VmGrantRow>(
      `INSERT INTO vm_console_grants (vm_id, customer, console_token_hash, expires_at, created_by) VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5) RETURNING *`,
      [g.vmId, g.customer, g.tokenHash, g.ttlSeconds, g.createdBy],
    );
    return row!;
  }

  /** End live grants (one, or all of a VM); the ones ended. */
  revoke(f: { id?: string; vmId?: string }, by: string, reason: string): Promise<VmGrantRow[]> {
    return this.db.rows<VmGrantRow>(
      `UPDATE vm_console_grants SET revoked_at = now(), revoked_by = $3, revoke_reason = $4
        WHERE ($1::uuid IS NULL OR id = $1) AND ($2::uuid IS NULL OR vm_id = $2) AND revoked_at IS NULL AND expires_at > now() RETURNING *`,
      [f.id ?? null, f.vmId ?? null, by, reason],
    );
  }
}
