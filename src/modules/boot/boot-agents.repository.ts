import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';

/** An announcement counts while it is this fresh (the announcer refreshes it every 10 s). */
export const BOOT_AGENT_FRESH_SECONDS = 30;

export interface BootAgentRow {
  id: string;
  site_id: string | null;
  site_code: string | null;
  address: string;
  http_base: string;
  services: Record<string, unknown>;
  started_at: Date;
  seen_at: Date;
}

/** The processes serving network boot (boot_agents), and which sites they cover. */
@Injectable()
export class BootAgentsRepository {
  constructor(private readonly db: Database) {}

  async announce(a: { id: string; siteId: string | null; address: string; httpBase: string; services: Record<string, unknown> }): Promise<void> {
    await this.db.rows(
      `INSERT INTO boot_agents (id, site_id, address, http_base, services) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET seen_at = now(), address = EXCLUDED.address, http_base = EXCLUDED.http_base, services = EXCLUDED.services`,
      [a.id, a.siteId, a.address, a.httpBase, JSON.stringify(a.services)],
    );
  }

  async remove(id: string): Promise<void> {
    await this.db.rows('DELETE FROM boot_agents WHERE id = $1', [id]);
  }

  /** Whether a live boot agent covers the site (one of its own, or a process of role all). */
  async serving(siteId: string): Promise<boolean> {
    const [row] = await this.db.rows<{ ok: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM boot_agents WHERE (site_id = $1 OR site_id IS NULL) AND seen_at > now() - make_interval(secs => $2)) AS ok`,
      [siteId, BOOT_AGENT_FRESH_SECONDS],
    );
    return !!row?.ok;
  }

  list(): Promise<BootAgentRow[]> {
    return this.db.rows<BootAgentRow>(
      `SELECT b.*, s.code AS site_code FROM boot_agents b LEFT JOIN sites s ON s.id = b.site_id
        WHERE b.seen_at > now() - make_interval(secs => $1) ORDER BY s.code NULLS FIRST, b.started_at`,
      [BOOT_AGENT_FRESH_SECONDS],
    );
  }
}

/** SQL for other repositories' queries: true when a live boot agent covers the site `siteColumn`. */
export function bootServedSql(siteColumn: string): string {
  return `EXISTS (SELECT 1 FROM boot_agents ba WHERE (ba.site_id = ${siteColumn} OR ba.site_id IS NULL) AND ba.seen_at > now() - interval '${BOOT_AGENT_FRESH_SECONDS} seconds')`;
}
