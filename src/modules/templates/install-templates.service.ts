import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '../../app.tokens';
import { DomainError, NotFoundError, ValidationError } from '../../common/errors';
import { requestContext } from '../../common/request-context';
import { Database } from '../../database/database';
import { AuditService } from '../audit/audit.service';
import { OS_TEMPLATES } from '../servers/install.schemas';
import { FIRST_BOOT_MARK, POST_INSTALL_MARK, installContext, renderInstallTemplate, shippedTemplate, templateFiles, type InstallInputs } from './install-templates';
import { InstallTemplateRepository } from './install-template.repository';
import { checkRendered } from './template-checks';

const FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Two installs unlike each other, to render a template with before it is accepted. */
const SAMPLES: InstallInputs[] = [
  { os: '', jobId: '00000000-0000-4000-8000-000000000000', hostname: 'sample1.example.com', sshKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl sample'], diskLayout: 'single', network: { mode: 'dhcp' }, mirror: 'http://mirror.example/os', disks: ['/dev/sda', '/dev/sdb'], callbackBase: 'http://10.0.0.1:8080', token: 'sample-token' },
  { os: '', jobId: '00000000-0000-4000-8000-000000000001', hostname: 'sample2.example.com', rootPasswordHash: `$6$samplesa$${'a'.repeat(86)}`, sshKeys: [], diskLayout: 'raid1', network: { mode: 'static', address: '192.0.2.10/24', gateway: '192.0.2.1', dns: ['192.0.2.53'] }, mirror: 'http://mirror.example/os', proxy: 'http://proxy.example:3128', disks: ['/dev/sda', '/dev/sdb'], callbackBase: 'http://10.0.0.1:8080', token: 'sample-token' },
];

export interface TemplateSource {
  body: string;
  /** 0: the shipped template. */
  version: number;
}

/**
 * Install templates: the shipped ones (templates/<os>/) and engineers' own versions of them, each
 * save a new version, checked before it is kept: it must compile, render for two unlike installs
 * without an unknown variable, and pass the real tool where Debian ships one. The newest version
 * is what installs get.
 */
@Injectable()
export class InstallTemplatesService {
  constructor(
    private readonly repo: InstallTemplateRepository,
    private readonly audit: AuditService,
    private readonly db: Database,
    @Inject(LOGGER) private readonly log: Logger,
  ) {}

  private checkOs(os: string): void {
    if (!(OS_TEMPLATES as readonly string[]).includes(os)) throw new ValidationError(`no OS template ${os}; there are ${OS_TEMPLATES.join(', ')}`, 'os');
  }

  async source(os: string, file: string): Promise<TemplateSource | null> {
    const custom = await this.repo.latest(os, file);
    if (custom) return { body: custom.body, version: custom.version };
    const shipped = shippedTemplate(os, file);
    return shipped === null ? null : { body: shipped, version: 0 };
  }

  /** Whether the OS's templates, as installs render them now, write the first-boot report. */
  phonesHome(os: string): Promise<boolean> {
    return this.uses(os, FIRST_BOOT_MARK);
  }

  /** Whether the OS's templates, as installs render them now, write the customer's post-install script. */
  runsPostInstall(os: string): Promise<boolean> {
    return this.uses(os, POST_INSTALL_MARK);
  }

  private async uses(os: string, mark: string): Promise<boolean> {
    const custom = (await this.repo.all()).filter((r) => r.os === os).map((r) => r.file);
    for (const file of new Set([...templateFiles(os), ...custom])) if ((await this.source(os, file))?.body.includes(mark)) return true;
    return false;
  }

  async list() {
    const custom = new Map((await this.repo.all()).map((r) => [`${r.os}/${r.file}`, r]));
    const out: { os: string; file: string; version: number; source: 'shipped' | 'custom'; updatedAt: Date | null }[] = [];
    for (const os of OS_TEMPLATES) {
      const files = new Set([...templateFiles(os), ...[...custom.values()].filter((r) => r.os === os).map((r) => r.file)]);
      for (const file of [...files].sort()) {
        const c = custom.get(`${os}/${file}`);
        out.push({ os, file, version: c?.version ?? 0, source: c ? 'custom' : 'shipped', updatedAt: c?.created_at ?? null });
      }
    }
    return out;
  }

  async get(os: string, file: string) {
    this.checkOs(os);
    const src = await this.source(os, file);
    if (!src) throw new NotFoundError('install template', `${os}/${file}`);
    return { os, file, version: src.version, source: src.version ? 'custom' : 'shipped', body: src.body, shipped: shippedTemplate(os, file), versions: await this.repo.versions(os, file) };
  }

  async save(os: string, file: string, body: string, note?: string) {
    this.checkOs(os);
    if (!FILE.test(file)) throw new ValidationError('a template file name is letters, digits, dot, dash or underscore (at most 64)', 'file');
    for (const sample of SAMPLES) {
      let text: string;
      try {
        text = renderInstallTemplate(body, installContext({ ...sample, os }));
      } catch (err) {
        throw new DomainError('template_invalid', `the template does not render: ${(err as Error).message.split('\n')[0]}`, 400, 'body');
      }
      let verdict: string | null = null;
      try {
        verdict = await checkRendered(file, text);
      } catch (err) {
        // The checker is not installed here: the template is kept, and the log says it was not checked.
        this.log.warn({ os, file, err: (err as Error).message }, 'install template saved without its tool check');
      }
      if (verdict) throw new DomainError('template_invalid', `rendered for ${sample.hostname}, the template fails ${verdict}`, 400, 'body');
    }
    return this.db.transaction(async () => {
      const row = await this.repo.add(os, file, body, note ?? null, requestContext.actorName());
      await this.audit.record({ action: 'install-template.save', targetType: 'install-template', targetId: row.id, changes: { os, file, version: row.version, note: note ?? null } });
      return { os, file, version: row.version, note: row.note, createdBy: row.created_by, createdAt: row.created_at };
    });
  }
}
