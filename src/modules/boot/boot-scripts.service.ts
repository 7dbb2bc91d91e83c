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
import { bootHttpBase } from './dhcp.service';

/** The racksmith folder: pxe/ and the default boot-asset manifest live there. */
const PACKAGE_ROOT = join(__dirname, '..', '..', '..');
const PXE = join(PACKAGE_ROOT, 'pxe');

const assetSchema = z.object({ package: z.string().nullish(), kernel: z.string().min(1), initrd: z.string().min(1), cmdline: z.string().default('') }).strict();
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
  private readonly templates = new Map<string, string>();

  constructor(
    @Inject(AppConfig) private readonly config: Config,
    @Inject(LOGGER) private readonly log: Logger,
    private readonly repo: BootRepository,
    private readonly jobs: JobRepository,
    private readonly install: InstallService,
  ) {}

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

  private template(name: string): string {
    let t = this.templates.get(name);
    if (t === undefined) this.templates.set(name, (t = readFileSync(join(PXE, `${name}.ipxe`), 'utf8')));
    return t;
  }

  async script(mac: string, from: string): Promise<BootScript> {
    const target = await this.repo.target(mac);
    if (!target) {
      this.log.info({ component: 'boot', mac, from }, 'iPXE script asked for by a MAC racksmith does not know');
      return { status: 404, body: renderTemplate(this.template('missing'), { message: `${mac} is not in the inventory` }) };
    }
    if (!target.install_job || target.lifecycle !== 'deploying') return { status: 200, body: renderTemplate(this.template('local'), { serverName: target.name }) };

    const jobId = target.install_job;
    const job = await this.jobs.job(jobId);
    const os = String(job?.params.os);
    const asset = this.assets()[os];
    const missing = !asset ? `no boot assets for ${os} in the manifest` : [asset.kernel, asset.initrd].filter((f) => !existsSync(f)).map((f) => `${f} is missing${asset.package ? ` (Debian package ${asset.package})` : ''}`)[0];
    if (missing) {
      await this.jobs.log(jobId, null, 'error', `boot: ${missing}`);
      return { status: 200, body: renderTemplate(this.template('missing'), { message: missing }) };
    }
    const base = bootHttpBase(this.config);
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
      callbackUrl: `${base}/api/v1/install-callbacks/${jobId}`,
      templateUrl: `${base}/boot/templates/${jobId}?token=${token}`,
    };
    vars.cmdline = renderTemplate(asset!.cmdline, vars);
    await this.jobs.log(jobId, null, 'info', `boot: iPXE script for ${os} served to ${mac} (${from})`);
    return { status: 200, body: renderTemplate(this.template('install'), vars) };
  }

  /** An installer's kernel or initrd was fetched: a milestone for its job (first byte only). */
  async fetched(os: string, which: string, from: string): Promise<void> {
    const lease = await this.repo.leaseByIp(from);
    if (!lease) return;
    const target = await this.repo.target(lease.mac);
    if (target?.install_job) await this.jobs.log(target.install_job, null, 'info', `boot: ${os} ${which} fetched by ${lease.mac} (${from})`);
  }
}
