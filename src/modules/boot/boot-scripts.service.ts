import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { LOGGER } from '../../app.tokens';
import { AppConfig, type Config } from '../../config/config';
import { JobRepository } from '../../jobs/job.repository';
import { InstallService } from '../servers/install.service';
import { BootRepository } from './boot.repository';
import { BootHttp } from './boot-http.service';
import { firstBootUrl } from '../templates/first-boot';
import { NotFoundError } from '../../common/errors';
import { installContext, renderInstallTemplate, type InstallInputs } from '../templates/install-templates';
import { InstallTemplatesService } from '../templates/install-templates.service';
import { deployConfigScript } from '../images/deploy-config';
import { OsImagesService } from '../images/os-images.service';

/** The boot-asset manifest's entry image installs boot: racksmith's deploy ramdisk. */
export const DEPLOY_ASSET = 'deploy';

interface JobImage {
  name: string;
  format: string;
  sha256: string;
}

/** The racksmith folder: pxe/ and the default boot-asset manifest live there. */
const PACKAGE_ROOT = join(__dirname, '..', '..', '..');
const PXE = join(PACKAGE_ROOT, 'pxe');

const assetSchema = z
  .object({
    package: z.string().nullish(),
    kernel: z.string().min(1),
    initrd: z.string().min(1),
    cmdline: z.string().default(''),
    mirror: z.url().optional(),
    /** The mirror's Release is not signed by the OS's archive key (a local repository): the installer is told to accept it. */
    mirrorUnsigned: z.boolean().default(false),
    /** The mirror is the installer's only package source: no security or updates hosts, no NTP (an isolated provisioning network). */
    mirrorOnly: z.boolean().default(false),
    disks: z.array(z.string().min(1)).max(8).default([]),
  })
  .strict();
const manifestSchema = z.record(z.string(), assetSchema);
export type BootAsset = z.infer<typeof assetSchema>;

/** `{{name}}` replaced by vars[name]; an unknown name is an error (a typo must not boot). */
export function renderTemplate(text: string, vars: Record<string, string>): string {
  return text.replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    if (!(name in vars)) throw new Error(`template variable {{${name}}} is not known`);
    return vars[name]!;
  });
}

export interface BootScript {
  status: number;
  body: string;
}

/**
 * The iPXE script a machine gets, by MAC: the installer of its pending install (kernel, initrd,
 * command line with the template URL and its job's callback), "boot from disk" for a known
 * server with nothing to install, a refusal for a MAC racksmith does not know. Kernels and
 * initrds come from the boot-asset manifest (`pxe/boot-assets.yaml`).
 */
@Injectable()
export class BootScripts {
  private manifest?: Record<string, BootAsset>;
  private readonly scripts = new Map<string, string>();

  constructor(
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
    private readonly repo: BootRepository,
    private readonly jobs: JobRepository,
    private readonly install: InstallService,
    private readonly installTemplates: InstallTemplatesService,
    private readonly images: OsImagesService,
    private readonly http: BootHttp,
  ) {}

  /** The file an image is served from (`/boot/images/<name>`), or null for an unknown or disabled image. */
  async imageFile(name: string): Promise<string | null> {
    const i = await this.images.get(name).catch(() => null);
    return i?.enabled ? i.file : null;
  }

  private assets(): Record<string, BootAsset> {
    if (!this.manifest) {
      const path = isAbsolute(this.config.boot.assets) ? this.config.boot.assets : join(PACKAGE_ROOT, this.config.boot.assets);
      this.manifest = manifestSchema.parse(parseYaml(readFileSync(path, 'utf8')) ?? {});
    }
    return this.manifest;
  }

  /** The file behind /boot/assets/<os>/<kernel|initrd>, or null. */
  asset(os: string, which: string): string | null {
    const a = this.assets()[os];
    if (!a || (which !== 'kernel' && which !== 'initrd')) return null;
    return a[which];
  }

  private ipxe(name: string): string {
    let t = this.scripts.get(name);
    if (t === undefined) this.scripts.set(name, (t = readFileSync(join(PXE, `${name}.ipxe`), 'utf8')));
    return t;
  }

  async script(mac: string, from: string): Promise<BootScript> {
    const target = await this.repo.target(mac);
    if (!target) {
      this.log.info({ component: 'boot', mac, from }, 'iPXE script asked for by a MAC racksmith does not know');
      return { status: 404, body: renderTemplate(this.ipxe('missing'), { message: `${mac} is not in the inventory` }) };
    }
    if (!target.install_job || (target.lifecycle !== 'deploying' && target.lifecycle !== 'wiping')) return { status: 200, body: renderTemplate(this.ipxe('local'), { serverName: target.name }) };

    const jobId = target.install_job;
    const job = await this.jobs.job(jobId);
    // Its installer (or deploy) reported done and rebooted: from now on the disk boots.
    if (await this.install.installerDone(jobId)) {
      await this.jobs.logToCurrentTask(jobId, 'info', `boot: ${mac} handed over to its disk (${from})`);
      return { status: 200, body: renderTemplate(this.ipxe('local'), { serverName: target.name }) };
    }
    const image = job?.params.image as JobImage | undefined;
    const os = image ? DEPLOY_ASSET : String(job?.params.os);
    const asset = this.assets()[os];
    const missing = !asset ? `no boot assets for ${os} in the manifest` : [asset.kernel, asset.initrd].filter((f) => !existsSync(f)).map((f) => `${f} is missing${asset.package ? ` (Debian package ${asset.package})` : ''}`)[0];
    if (missing) {
      await this.jobs.logToCurrentTask(jobId, 'error', `boot: ${missing}`);
      return { status: 200, body: renderTemplate(this.ipxe('missing'), { message: missing }) };
    }
    const base = this.http.base;
    const token = await this.install.callbackToken(jobId);
    const fqdn = String(job!.params.hostname ?? target.name);
    const vars: Record<string, string> = {
      os,
      jobId,
      mac,
      token,
      serverName: target.name,
      hostname: fqdn.split('.')[0]!,
      domain: fqdn.split('.').slice(1).join('.') || 'localdomain',
      kernelUrl: `${base}/boot/assets/${os}/kernel`,
      initrdUrl: `${base}/boot/assets/${os}/initrd`,
      initrdName: asset!.initrd.split('/').pop()!,
      fqdn,
      callbackUrl: `${base}/api/v1/install-callbacks/${jobId}`,
      templateBase: `${base}/boot/templates/${jobId}/${token}/`,
      wipeMode: String(job!.params.wipeMode ?? 'quick'),
    };
    try {
      vars.cmdline = renderTemplate(asset!.cmdline, vars);
      if (image) {
        vars.cmdline += ` racksmith.image=${base}/boot/images/${image.name} racksmith.format=${image.format} racksmith.sha256=${image.sha256} racksmith.config=${vars.templateBase}deploy.sh`;
      }
    } catch (err) {
      const why = `the ${os} command line in the boot-asset manifest: ${(err as Error).message}`;
      await this.jobs.logToCurrentTask(jobId, 'error', `boot: ${why}`);
      return { status: 200, body: renderTemplate(this.ipxe('missing'), { message: why }) };
    }
    await this.jobs.logToCurrentTask(jobId, 'info', `boot: iPXE script for ${image ? `the deploy of image ${image.name}` : os} served to ${mac} (${from})`);
    return { status: 200, body: renderTemplate(this.ipxe('install'), vars) };
  }

  /**
   * An install template rendered for its job (`/boot/templates/<job>/<token>/<file>`): the
   * token must be the job's, the job still waiting for its installer.
   */
  async template(jobId: string, token: string, file: string, from: string): Promise<string> {
    const job = await this.install.byToken(jobId, token);
    const p = job.params as { os: string; image?: JobImage; hostname: string; rootPasswordHash?: string; sshKeys?: string[]; diskLayout?: 'single' | 'raid1'; postInstallScript?: string; network?: InstallInputs['network'] };
    if (p.image) {
      if (file !== 'deploy.sh') throw new NotFoundError('deploy file', file);
      const mac = (await this.repo.leaseByIp(from))?.mac ?? '';
      await this.jobs.logToCurrentTask(jobId, 'info', `boot: configuration of image ${p.image.name} served to ${from}`);
      return deployConfigScript({
        hostname: p.hostname,
        sshKeys: p.sshKeys ?? [],
        rootPasswordHash: p.rootPasswordHash,
        network: p.network ?? { mode: 'dhcp' },
        mac,
        firstBootUrl: firstBootUrl(this.http.base, jobId),
        token,
        postInstallScript: p.postInstallScript,
      });
    }
    const source = await this.installTemplates.source(p.os, file);
    if (source === null) throw new NotFoundError('install template file', `${p.os}/${file}`);
    const asset = this.assets()[p.os];
    const ctx = installContext({
      os: p.os,
      jobId,
      hostname: p.hostname,
      rootPasswordHash: p.rootPasswordHash,
      sshKeys: p.sshKeys ?? [],
      diskLayout: p.diskLayout ?? 'single',
      postInstallScript: p.postInstallScript,
      network: p.network ?? { mode: 'dhcp' },
      mirror: asset?.mirror ?? 'http://deb.debian.org/debian',
      mirrorUnsigned: asset?.mirrorUnsigned,
      mirrorOnly: asset?.mirrorOnly,
      proxy: this.config.boot.installProxy,
      disks: asset?.disks ?? [],
      callbackBase: this.http.base,
      token,
    });
    const text = renderInstallTemplate(source.body, ctx, `${p.os}/${file}@${source.version}`);
    await this.jobs.logToCurrentTask(jobId, 'info', `boot: ${p.os} ${file} (${source.version ? `version ${source.version}` : 'shipped'}) served to ${from}`);
    return text;
  }

  /** An installer's kernel or initrd was fetched: a milestone for its job (first byte only). */
  async fetched(os: string, which: string, from: string): Promise<void> {
    const lease = await this.repo.leaseByIp(from);
    if (!lease) return;
    const target = await this.repo.target(lease.mac);
    if (target?.install_job) await this.jobs.logToCurrentTask(target.install_job, 'info', `boot: ${os} ${which} fetched by ${lease.mac} (${from})`);
  }
}
