import { Injectable } from '@nestjs/common';
import { NotFoundError, ValidationError } from '../../common/errors';
import { Database } from '../../database/database';
import { AuditService } from '../audit/audit.service';
import { OsImagesRepository, type OsImageRow } from './os-images.repository';
import type { OsImageInput } from './os-images.schemas';

export interface OsImageView {
  name: string;
  os: string;
  format: string;
  file: string;
  url: string | null;
  sha256: string;
  diskBytes: number;
  enabled: boolean;
  updatedAt: string;
}

const view = (i: OsImageRow): OsImageView => ({ name: i.name, os: i.os, format: i.format, file: i.file, url: i.url, sha256: i.sha256, diskBytes: Number(i.disk_bytes), enabled: i.enabled, updatedAt: i.updated_at.toISOString() });

/** OS images for rented servers: registered through the API (what `racksmith images build` printed). */
@Injectable()
export class OsImagesService {
  constructor(
    private readonly repo: OsImagesRepository,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  async list(): Promise<OsImageView[]> {
    return (await this.repo.images()).map(view);
  }

  async get(name: string): Promise<OsImageView> {
    const i = await this.repo.image(name);
    if (!i) throw new NotFoundError('image', name);
    return view(i);
  }

  /** The image an install asks for: known, enabled, of the install's OS (400 naming `image`). */
  async usable(name: string, os: string): Promise<OsImageView> {
    const i = await this.repo.image(name);
    if (!i) throw new ValidationError(`image: no image ${name} (GET /api/v1/images lists them)`, 'image');
    if (!i.enabled) throw new ValidationError(`image: image ${name} is disabled for new installs`, 'image');
    if (i.os !== os) throw new ValidationError(`image: image ${name} holds ${i.os}, not ${os}`, 'image');
    return view(i);
  }

  async put(name: string, input: OsImageInput): Promise<{ image: OsImageView; created: boolean }> {
    return this.db.transaction(async () => {
      const created = await this.repo.upsert({ name, os: input.os, format: input.format, file: input.file, url: input.url ?? null, sha256: input.sha256, diskBytes: input.diskBytes, enabled: input.enabled });
      await this.audit.record({ action: created ? 'image.create' : 'image.update', targetType: 'os_image', targetId: name, changes: input });
      return { image: await this.get(name), created };
    });
  }

  async remove(name: string): Promise<void> {
    await this.db.transaction(async () => {
      if (!(await this.repo.delete(name))) throw new NotFoundError('image', name);
      await this.audit.record({ action: 'image.delete', targetType: 'os_image', targetId: name });
    });
  }
}
