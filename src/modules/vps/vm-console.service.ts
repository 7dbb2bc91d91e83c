import { Inject, Injectable } from '@nestjs/common';
import { ConflictError, NotFoundError, ValidationError } from '../../common/errors';
import { randomToken, safeEqual, sha256Hex } from '../../common/crypto';
import { requestContext } from '../../common/request-context';
import { AppConfig, type Config } from '../../config/config';
import type { VmConsole } from '../../drivers/hypervisor/hypervisor-driver';
import { AuditService } from '../audit/audit.service';
import { HypervisorsService } from './hypervisors.service';
import { VmConsoleRepository, type VmGrantRow } from './vm-console.repository';
import { VpsRepository } from './vps.repository';

export interface VmGrantView {
  id: string;
  vmId: string;
  customer: string;
  state: 'active' | 'expired' | 'revoked';
  expiresAt: string;
  createdBy: string;
  createdAt: string;
  revokedAt: string | null;
  revokedBy: string | null;
  revokeReason: string | null;
}

/** What the customer receives, once: the console link (its token is not kept). */
export interface VmGrantCreated extends VmGrantView {
  consoleUrl: string;
}

const MIN_TTL = 60;
/** VMs whose console can be handed out. */
const GRANTABLE = ['placed', 'creating', 'running', 'stopped', 'paused', 'rebuilding', 'error'];

const view = (g: VmGrantRow): VmGrantView => ({
  id: g.id,
  vmId: g.vm_id,
  customer: g.customer,
  state: g.revoked_at ? 'revoked' : g.expires_at.getTime() <= Date.now() ? 'expired' : 'active',
  expiresAt: g.expires_at.toISOString(),
  createdBy: g.created_by,
  createdAt: g.created_at.toISOString(),
  revokedAt: g.revoked_at?.toISOString() ?? null,
  revokedBy: g.revoked_by,
  revokeReason: g.revoke_reason,
});

/**
 * A customer's console for a VM, through the same grant model as IPKVM: time-boxed, for the VM's
 * customer, a link whose token stays in the URL fragment, revocable, audited. There is no BMC
 * account: the web terminal relays the VM's serial console (`virsh console` over the
 * hypervisor's SSH connection) while the grant is live.
 */
@Injectable()
export class VmConsoleService {
  private readonly listeners = new Set<(grantId: string) => void>();

  constructor(
    private readonly grants: VmConsoleRepository,
    private readonly vms: VpsRepository,
    private readonly hypervisors: HypervisorsService,
    private readonly audit: AuditService,
    @Inject(AppConfig) private readonly config: Config,
  ) {}

  /** Told of every grant that ends here (the web terminal closes its sessions). */
  onEnded(fn: (grantId: string) => void): void {
    this.listeners.add(fn);
  }

  async create(vmId: string, input: { customer?: string; ttl: number }, baseUrl: string): Promise<VmGrantCreated> {
    if (input.ttl < MIN_TTL || input.ttl > this.config.console.maxTtl) throw new ValidationError(`ttl must be from ${MIN_TTL} to ${this.config.console.maxTtl} seconds, got ${input.ttl}`, 'ttl');
    const vm = await this.vms.vm(vmId);
    if (!vm) throw new NotFoundError('vm', vmId);
    if (input.customer && input.customer !== vm.customer) throw new ValidationError(`customer: VM ${vm.name} belongs to customer ${vm.customer}`, 'customer');
    if (!GRANTABLE.includes(vm.state)) throw new ConflictError('vm_not_grantable', `VM ${vm.name} is ${vm.state}: no console access`, { state: vm.state });
    const token = randomToken(24);
    const row = await this.grants.insert({ vmId, customer: vm.customer, tokenHash: sha256Hex(token), ttlSeconds: input.ttl, createdBy: requestContext.actorName() });
    await this.audit.record({ action: 'vm-console-grant.create', targetType: 'vm', targetId: vmId, changes: { grantId: row.id, customer: vm.customer, expiresAt: row.expires_at.toISOString() } });
    return { ...view(row), consoleUrl: `${baseUrl.replace(/\/$/, '')}/console/vps/${row.id}#${token}` };
  }

  async get(id: string): Promise<VmGrantView> {
    const g = await this.grants.get(id);
    if (!g) throw new NotFoundError('console grant', id);
    return view(g);
  }

  async list(vmId: string, limit = 100): Promise<VmGrantView[]> {
    return (await this.grants.list(vmId, limit)).map(view);
  }

  async revoke(id: string, reason: string): Promise<VmGrantView> {
    const g = await this.grants.get(id);
    if (!g) throw new NotFoundError('console grant', id);
    await this.end({ id }, reason);
    return this.get(id);
  }

  /** Every live grant of a VM ends (deleted, suspended). */
  async revokeAllForVm(vmId: string, reason: string): Promise<number> {
    return (await this.end({ vmId }, reason)).length;
  }

  private async end(f: { id?: string; vmId?: string }, reason: string): Promise<VmGrantRow[]> {
    const ended = await this.grants.revoke(f, requestContext.actorName(), reason);
    for (const g of ended) {
      await this.audit.record({ action: 'vm-console-grant.revoke', targetType: 'vm', targetId: g.vm_id, changes: { grantId: g.id, reason } });
      for (const fn of this.listeners) fn(g.id);
    }
    return ended;
  }

  /** The VM a grant and its token open, while the grant is live; null otherwise. */
  async authorise(grantId: string, token: string): Promise<{ vmId: string; customer: string } | null> {
    const g = await this.grants.get(grantId);
    if (!g || g.revoked_at || g.expires_at.getTime() <= Date.now() || !safeEqual(g.console_token_hash, sha256Hex(token))) return null;
    return { vmId: g.vm_id, customer: g.customer };
  }

  async live(grantId: string): Promise<boolean> {
    const g = await this.grants.get(grantId);
    return !!g && !g.revoked_at && g.expires_at.getTime() > Date.now();
  }

  /** The VM's serial console, through its hypervisor's driver. */
  async open(vmId: string): Promise<VmConsole> {
    const { vm, driver, target } = await this.hypervisors.forVm(vmId);
    return driver.openConsole(target, vm.name);
  }
}
