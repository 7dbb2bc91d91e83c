import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';

export interface TemplateVersionRow {
  id: string;
  os: string;
  file: string;
  version: number;
  body: string;
  note: string | null;
  created_by: string;
  created_at: Date;
}

/** Versions of engineers' install templates. */
@Injectable()
export class InstallTemplateRepository {
  constructor(private readonly db: Database) {}

  async latest(os: string, file: string): Promise<TemplateVersionRow | null> {
    const [row] = await this.db.rows<TemplateVersionRow>('SELECT * FROM install_templates WHERE os = $1 AND file = $2 ORDER BY version DESC LIMIT 1', [os, file]);
    return row ?? null;
  }

  versions(os: string, file: string): Promise<Omit<TemplateVersionRow, 'body'>[]> {
    return this.db.rows('SELECT id, os, file, version, note, created_by, created_at FROM install_templates WHERE os = $1 AND file = $2 ORDER BY version DESC', [os, file]);
  }

  all(): Promise<{ os: string; file: string; version: number; created_at: Date }[]> {
    return this.db.rows('SELECT DISTINCT ON (os, file) os, file, version, created_at FROM install_templates ORDER BY os, file, version DESC');
  }

  /** The next version; two engineers saving at once get consecutive numbers (the unique key decides). */
  async add(os: string, file: string, body: string, note: string | null, by: string): Promise<TemplateVersionRow> {
    const [row] = await this.db.rows<TemplateVersionRow>(
      `INSERT INTO install_templates (os, file, version, body, note, created_by)
       VALUES ($1, $2, COALESCE((SELECT max(version) FROM install_templates WHERE os = $1 AND file = $2), 0) + 1, $3, $4, $5)
       RETURNING *`,
      [os, file, body, note, by],
    );
    return row!;
  }
}
