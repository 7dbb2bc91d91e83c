import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';

export interface ImageArtifact {
  file: string;
  url?: string;
  sha256?: string;
}

export interface VmImageRow {
  name: string;
  os: string;
  file: string;
  url: string | null;
  sha256: string | null;
  boot: { kernel: ImageArtifact; initrd?: ImageArtifact; cmdline: string } | null;
  min_disk_gb: number;
  enabled: boolean;
  /** Live VMs made from it. */
  vms: number;
  created_at: Date;
  updated_at: Date;
}

const IMG = `SELECT i.*, (SELECT count(*)::int FROM vms m WHERE m.base_image = i.name AND m.state NOT IN ('deleted', 'failed')) AS vms FROM vm_images i`;

/** Base images VMs are made from. */
@Injectable()
export class VmImagesRepository {
  constructor(private readonly db: Database) {}

  image(name: string): Promise<VmImageRow | undefined> {
    return this.db.rows<VmImageRow>(`${IMG} WHERE i.name = $1`, [name]).then((r) => r[0]);
  }

  images(): Promise<VmImageRow[]> {
    return this.db.rows<VmImageRow>(`${IMG} ORDER BY i.name`);
  }

  async upsert(i: { name: string; os: string; file: string; url: string | null; sha256: string | null; boot: unknown; minDiskGb: number; enabled: boolean }): Promise<boolean> {
    const [row] = await this.db.rows<{ created: boolean }>(
      `INSERT INTO vm_images (name, os, file, url, sha256, boot, min_disk_gb, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (name) DO UPDATE SET os = EXCLUDED.os, file = EXCLUDED.file, url = EXCLUDED.url, sha256 = EXCLUDED.sha256, boot = EXCLUDED.boot,
         min_disk_gb = EXCLUDED.min_disk_gb, enabled = EXCLUDED.enabled, updated_at = now()
       RETURNING (xmax = 0) AS created`,
      [i.name, i.os, i.file, i.url, i.sha256, i.boot === undefined ? null : JSON.stringify(i.boot), i.minDiskGb, i.enabled],
    );
    return row.created;
  }

  async delete(name: string): Promise<boolean> {
    return (await this.db.rows('DELETE FROM vm_images WHERE name = $1 RETURNING name', [name])).length > 0;
  }
}
