import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';

export interface OsImageRow {
  name: string;
  os: string;
  format: 'raw' | 'raw.gz';
  file: string;
  url: string | null;
  sha256: string;
  disk_bytes: string;
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
}

/** OS images rented servers are deployed from. */
@Injectable()
export class OsImagesRepository {
  constructor(private readonly db: Database) {}

  image(name: string): Promise<OsImageRow | undefined> {
    return this.db.rows<OsImageRow>('SELECT * FROM os_images WHERE name = $1', [name]).then((r) => r[0]);
  }

  images(): Promise<OsImageRow[]> {
    return this.db.rows<OsImageRow>('SELECT * FROM os_images ORDER BY name');
  }

  async upsert(i: { name: string; os: string; format: string; file: string; url: string | null; sha256: string; diskBytes: number; enabled: boolean }): Promise<boolean> {
    const [row] = await this.db.rows<{ created: boolean }>(
      `INSERT INTO os_images (name, os, format, file, url, sha256, disk_bytes, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (name) DO UPDATE SET os = EXCLUDED.os, format = EXCLUDED.format, file = EXCLUDED.file, url = EXCLUDED.url, sha256 = EXCLUDED.sha256,
         disk_bytes = EXCLUDED.disk_bytes, enabled = EXCLUDED.enabled, updated_at = now()
       RETURNING (xmax = 0) AS created`,
      [i.name, i.os, i.format, i.file, i.url, i.sha256, i.diskBytes, i.enabled],
    );
    return row!.created;
  }

  async delete(name: string): Promise<boolean> {
    return (await this.db.rows('DELETE FROM os_images WHERE name = $1 RETURNING name', [name])).length > 0;
  }
}
