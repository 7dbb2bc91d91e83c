import { Injectable } from '@nestjs/common';
import { ConflictError, MissingReferenceError, NotFoundError, ValidationError } from '../../common/errors';
import { SecretBox } from '../../common/secret-box';
import { Database } from '../../database/database';
import { describeConstraints } from '../../database/db-errors';
import { AuditService } from '../audit/audit.service';
import { DevicesService } from '../inventory/devices.service';
import { HypervisorError, type HypervisorDriver, type HypervisorTarget } from '../../drivers/hypervisor/hypervisor-driver';
import { HypervisorDrivers } from './hypervisor-drivers';
import { VpsRepository, type HypervisorRow, type VmRow } from './vps.repository';
import type { HypervisorInput, HypervisorUpdate } from './vps.schemas';

describeConstraints({
  hypervisors_no_overbooking: { code: 'capacity_in_use', message: 'the VMs on this hypervisor already use more than that capacity', field: 'capacity', status: 409 },
  hypervisors_pkey: { code: 'already_registered', message: 'this device is already registered as a hypervisor', field: 'deviceId', status: 409 },
});

export interface HypervisorView {
  id: string;
  name: string;
  siteId: string;
  state: HypervisorRow['state'];
  driver: HypervisorRow['driver'];
  ssh: { host: string; port: number; user: string; keySet: boolean; hostKeySha256: string | null };
  libvirtUri: string;
  storagePool: string;
  domainType: HypervisorRow['domain_type'];
  bridge: string | null;
  ipPool: string | null;
  freeAddresses: number | null;
  sync: { at: string | null; error: string | null };
  capacity: { vcpus: number; ramMb: number; storageGb: number };
  overcommit: { cpu: number; ram: number; storage: number };
  used: { vcpus: number; ramMb: number; storageGb: number };
  free: { vcpus: number; ramMb: number; storageGb: number };
  vms: number;
}

export function hypervisorView(h: HypervisorRow): HypervisorView {
  return {
    id: h.device_id,
    name: h.name,
    siteId: h.site_id,
    state: h.state,
    driver: h.driver,
    ssh: { host: h.ssh_host, port: h.ssh_port, user: h.ssh_user, keySet: h.ssh_key_enc !== null, hostKeySha256: h.host_key_sha256 },
    libvirtUri: h.libvirt_uri,
    storagePool: h.storage_pool,
    domainType: h.domain_type,
    bridge: h.bridge,
    ipPool: h.ip_pool,
    freeAddresses: h.free_addresses,
    sync: { at: h.synced_at?.toISOString() ?? null, error: h.sync_error },
    capacity: { vcpus: h.vcpus, ramMb: h.ram_mb, storageGb: h.storage_gb },
    overcommit: { cpu: Number(h.cpu_ratio), ram: Number(h.ram_ratio), storage: Number(h.storage_ratio) },
    used: { vcpus: h.used_vcpus, ramMb: h.used_ram_mb, storageGb: h.used_storage_gb },
    free: { vcpus: h.free_vcpus, ramMb: h.free_ram_mb, storageGb: h.free_storage_gb },
    vms: h.vms,
  };
}

/** The company's KVM hosts: a hypervisor device, its capacity and overcommit, its state, how to reach it. */
@Injectable()
export class HypervisorsService {
  constructor(
    private readonly repo: VpsRepository,
    private readonly devices: DevicesService,
    private readonly secrets: SecretBox,
    private readonly audit: AuditService,
    private readonly db: Database,
    private readonly drivers: HypervisorDrivers,
  ) {}

  /** A VM, its host, the host's driver and how to reach it. */
  async forVm(vmId: string): Promise<{ vm: VmRow; host: HypervisorRow; driver: HypervisorDriver; target: HypervisorTarget }> {
    const vm = await this.repo.vm(vmId);
    if (!vm) throw new NotFoundError('vm', vmId);
    const host = (await this.repo.hypervisor(vm.hypervisor_id))!;
    return { vm, host, ...(await this.access(host)) };
  }

  /** The host's driver and how to reach it (its SSH key unsealed). */
  async access(host: HypervisorRow): Promise<{ driver: HypervisorDriver; target: HypervisorTarget }> {
    const key = await this.repo.sshKey(host.device_id);
    if (host.driver !== 'fake' && (!key || !host.host_key_sha256)) throw new HypervisorError(`hypervisor ${host.name} has no SSH key or pinned host key`);
    const target: HypervisorTarget = {
      name: host.name,
      ssh: { host: host.ssh_host, port: host.ssh_port, user: host.ssh_user, privateKey: key ? this.secrets.open(key) : '', hostKeySha256: host.host_key_sha256 ?? '' },
      libvirtUri: host.libvirt_uri,
      storagePool: host.storage_pool,
    };
    return { driver: this.drivers.get(host.driver), target };
  }

  async get(id: string): Promise<HypervisorView> {
    const h = await this.repo.hypervisor(id);
    if (!h) throw new NotFoundError('hypervisor', id);
    return hypervisorView(h);
  }

  async list(f: { siteId?: string; state?: string }): Promise<HypervisorView[]> {
    return (await this.repo.hypervisors(f)).map(hypervisorView);
  }

  register(input: HypervisorInput): Promise<HypervisorView> {
    return this.db.transaction(async () => {
      const device = await this.devices.get(input.deviceId).catch(() => {
        throw new MissingReferenceError('device', input.deviceId, 'deviceId');
      });
      if (device.role !== 'hypervisor') throw new ConflictError('not_a_hypervisor', `device ${device.name} has role ${device.role}; register a device whose role is hypervisor`, { role: device.role }, 'deviceId');
      await this.repo.insertHypervisor({
        driver: input.driver,
        deviceId: device.id,
        siteId: device.siteId,
        sshHost: input.ssh.host,
        sshPort: input.ssh.port,
        sshUser: input.ssh.user,
        sshKeyEnc: input.ssh.privateKey ? this.secrets.seal(input.ssh.privateKey) : null,
        hostKeySha256: input.ssh.hostKeySha256,
        libvirtUri: input.libvirtUri,
        storagePool: input.storagePool,
        vcpus: input.capacity.vcpus,
        ramMb: input.capacity.ramMb,
        storageGb: input.capacity.storageGb,
        cpuRatio: input.overcommit.cpu,
        ramRatio: input.overcommit.ram,
        storageRatio: input.overcommit.storage,
        state: input.state,
        domainType: input.domainType,
        bridge: input.bridge ?? null,
        ipPoolId: input.ipPool ? await this.poolFor(input.ipPool, device.siteId) : null,
      });
      const { ssh, ...rest } = input;
      await this.audit.record({ action: 'hypervisor.register', targetType: 'hypervisor', targetId: device.id, changes: { ...rest, ssh: { host: ssh.host, port: ssh.port, user: ssh.user, hostKeySha256: ssh.hostKeySha256, keySet: !!ssh.privateKey } } });
      return this.get(device.id);
    });
  }

  /** A pool's id for a hypervisor of this site (400 naming `ipPool` otherwise). */
  private async poolFor(name: string, siteId: string): Promise<string> {
    const pool = await this.repo.pool(name);
    if (!pool) throw new MissingReferenceError('ip pool', name, 'ipPool');
    if (pool.site_id !== siteId) throw new ValidationError(`ipPool: pool ${name} is at another site than the hypervisor`, 'ipPool');
    return pool.id;
  }

  update(id: string, input: HypervisorUpdate): Promise<HypervisorView> {
    return this.db.transaction(async () => {
      const current = await this.get(id);
      const ipPoolId = input.ipPool === undefined ? undefined : input.ipPool === null ? null : await this.poolFor(input.ipPool, current.siteId);
      await this.repo.updateHypervisor(id, {
        ...(input.state ? { state: input.state } : {}),
        ...(input.domainType ? { domain_type: input.domainType } : {}),
        ...(input.bridge !== undefined ? { bridge: input.bridge } : {}),
        ...(ipPoolId !== undefined ? { ip_pool_id: ipPoolId } : {}),
        ...(input.capacity?.vcpus ? { vcpus: input.capacity.vcpus } : {}),
        ...(input.capacity?.ramMb ? { ram_mb: input.capacity.ramMb } : {}),
        ...(input.capacity?.storageGb ? { storage_gb: input.capacity.storageGb } : {}),
        ...(input.overcommit?.cpu ? { cpu_ratio: input.overcommit.cpu } : {}),
        ...(input.overcommit?.ram ? { ram_ratio: input.overcommit.ram } : {}),
        ...(input.overcommit?.storage ? { storage_ratio: input.overcommit.storage } : {}),
      });
      await this.audit.record({ action: 'hypervisor.update', targetType: 'hypervisor', targetId: id, changes: input });
      return this.get(id);
    });
  }

  remove(id: string): Promise<void> {
    return this.db.transaction(async () => {
      const h = await this.get(id);
      if (h.vms) throw new ConflictError('hypervisor_in_use', `hypervisor ${h.name} still holds ${h.vms} VM(s): drain it first`, { vms: h.vms });
      await this.repo.deleteHypervisor(id);
      await this.audit.record({ action: 'hypervisor.remove', targetType: 'hypervisor', targetId: id });
    });
  }
}
