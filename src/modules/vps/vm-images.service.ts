import { Injectable } from '@nestjs/common';
import { ConflictError, NotFoundError, ValidationError } from '../../common/errors';
import { Database } from '../../database/database';
import { AuditService } from '../audit/audit.service';
import { VmImagesRepository, type ImageArtifact, type VmImageRow } from './vm-images.repository';
import type { VmImageInput } from './vps.schemas';

export interface VmImageView {
  name: string;
  os: string;
  file: string;
  url: string | null;
  sha256: string | null;
  boot: VmImageRow['boot'];
  minDiskGb: number;
  enabled: boolean;
  vms: number;
  updatedAt: string;
}

const imageView = (i: VmImageRow): VmImageView => ({ name: i.name, os: i.os, file: i.file, url: i.url, sha256: i.sha256, boot: i.boot, minDiskGb: i.min_disk_gb, enabled: i.enabled, vms: i.vms, updatedAt: i.updated_at.toISOString() });

/** Every file a VM made from the image needs in its hypervisor's pool: the disk, and a kernel and initrd for direct kernel boot. */
export function imageArtifacts(i: VmImageRow): ImageArtifact[] {
  const disk: ImageArtifact = { file: i.file, ...(i.url ? { url: i.url, sha256: i.sha256! } : {}) };
  return [disk, ...(i.boot ? [i.boot.kernel, ...(i.boot.initrd ? [i.boot.initrd] : [])] : [])];
}

/**
 * Base images: what a VM's disk is an overlay of. Registered through the API; a hypervisor whose
 * pool lacks one fetches it (checked by SHA-256) the first time a VM there is made from it.
 */
@Injectable()
export class VmImagesService {
  constructor(
    private readonly repo: VmImagesRepository,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  async list(): Promise<VmImageView[]> {
    return (await this.repo.images()).map(imageView);
  }

  async get(name: string): Promise<VmImageView> {
    return imageView(await this.row(name));
  }

  find(name: string): Promise<VmImageRow | undefined> {
    return this.repo.image(name);
  }

  async row(name: string): Promise<VmImageRow> {
    const i = await this.repo.image(name);
    if (!i) throw new NotFoundError('image', name);
    return i;
  }

  /** The image a new VM (or a rebuild) is made from: known, enabled, and not bigger than the VM's disk (400 naming `baseImage`/`diskGb`). */
  async usable(name: string, diskGb: number): Promise<VmImageRow> {
    const i = await this.repo.image(name);
    if (!i) throw new ValidationError(`baseImage: no image ${name} (GET /api/v1/vps/images lists them)`, 'baseImage');
    if (!i.enabled) throw new ValidationError(`baseImage: image ${name} is disabled for new VMs`, 'baseImage');
    if (diskGb < i.min_disk_gb) throw new ValidationError(`diskGb: image ${name} needs a disk of at least ${i.min_disk_gb} GB`, 'diskGb');
    return i;
  }

  async put(name: string, input: VmImageInput): Promise<{ image: VmImageView; created: boolean }> {
    return this.db.transaction(async () => {
      const created = await this.repo.upsert({ name, os: input.os, file: input.file, url: input.url ?? null, sha256: input.sha256 ?? null, boot: input.boot, minDiskGb: input.minDiskGb, enabled: input.enabled });
      await this.audit.record({ action: created ? 'vps.image_create' : 'vps.image_update', targetType: 'vm_image', targetId: name, changes: input });
      return { image: await this.get(name), created };
    });
  }

  /** 409 `image_in_use` while live VMs were made from it (disable it instead); the files on the hypervisors stay (VM disks are overlays of them). */
  async remove(name: string): Promise<void> {
    await this.db.transaction(async () => {
      const i = await this.row(name);
      if (i.vms) throw new ConflictError('image_in_use', `image ${name} is the base of ${i.vms} VM(s); set enabled: false to stop new VMs using it`, { vms: i.vms });
      await this.repo.delete(name);
      await this.audit.record({ action: 'vps.image_delete', targetType: 'vm_image', targetId: name });
    });
  }
}
