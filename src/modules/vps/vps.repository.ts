import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';

export interface HypervisorRow {
  device_id: string;
  site_id: string;
  name: string;
  state: 'enabled' | 'draining' | 'down';
  driver: 'libvirt-over-ssh' | 'fake';
  ssh_host: string;
  ssh_port: number;
  ssh_user: string;
  ssh_key_enc: string | null;
  host_key_sha256: string | null;
  libvirt_uri: string;
  storage_pool: string;
  domain_type: 'auto' | 'kvm' | 'qemu';
  bridge: string | null;
  ip_pool_id: string | null;
  /** Its pool's name and free addresses (null: no pool, VMs get their address elsewhere). */
  ip_pool: string | null;
  free_addresses: number | null;
  synced_at: Date | null;
  sync_error: string | null;
  vcpus: number;
  ram_mb: number;
  storage_gb: number;
  cpu_ratio: string;
  ram_ratio: string;
  storage_ratio: string;
  used_vcpus: number;
  used_ram_mb: number;
  used_storage_gb: number;
  /** Capacity times overcommit, minus what is handed out. */
  free_vcpus: number;
  free_ram_mb: number;
  free_storage_gb: number;
  vms: number;
  created_at: Date;
  updated_at: Date;
}

export interface VmRow {
  id: string;
  name: string;
  customer: string;
  hypervisor_id: string;
  site_id: string;
  vcpus: number;
  ram_mb: number;
  disk_gb: number;
  anti_affinity: boolean;
  state: string;
  order_id: string | null;
  base_image: string | null;
  hostname: string | null;
  job_id: string | null;
  last_error: string | null;
  /** Its address from a pool, when its host has one (not in rows read FOR UPDATE). */
  ipv4?: string | null;
  created_at: Date;
  updated_at: Date;
}

/** What a VM's seed says about its network: a pool address, or DHCP. */
export interface VmNetwork {
  address: string;
  prefix: number;
  gateway: string;
  dns: string[];
}

export interface PoolRow {
  id: string;
  name: string;
  site_id: string;
  network: string;
  gateway: string;
  dns: string[];
  first_address: string;
  last_address: string;
  size: number;
  used: number;
  hypervisors: number;
  created_at: Date;
  updated_at: Date;
}

const VM = `SELECT v.*, host(a.address) AS ipv4 FROM vms v LEFT JOIN vm_addresses a ON a.vm_id = v.id`;
const POOL = `SELECT p.id, p.name, p.site_id, p.network::text, host(p.gateway) AS gateway, array(SELECT host(d) FROM unnest(p.dns) d) AS dns,
    host(p.first_address) AS first_address, host(p.last_address) AS last_address, (p.last_address - p.first_address + 1)::int AS size,
    (SELECT count(*)::int FROM vm_addresses x WHERE x.pool_id = p.id) AS used, (SELECT count(*)::int FROM hypervisors h WHERE h.ip_pool_id = p.id) AS hypervisors,
    p.created_at, p.updated_at
  FROM vm_ip_pools p`;

export interface Need {
  vcpus: number;
  ramMb: number;
  diskGb: number;
  customer: string;
  antiAffinity: boolean;
  siteIds: string[];
}

/** Addresses of pool `p` no VM holds. */
const FREE_ADDRESSES = (p: string) => `(${p}.last_address - ${p}.first_address + 1 - (SELECT count(*) FROM vm_addresses x WHERE x.pool_id = ${p}.id))::int`;
/** A host VMs can get an address on: it has no pool, or its pool has a free address. */
const HAS_ADDRESS = `(h.ip_pool_id IS NULL OR (SELECT ${FREE_ADDRESSES('p')} > 0 FROM vm_ip_pools p WHERE p.id = h.ip_pool_id))`;

const HV = `SELECT h.*, d.name,
    floor(h.vcpus * h.cpu_ratio)::int - h.used_vcpus AS free_vcpus,
    floor(h.ram_mb * h.ram_ratio)::int - h.used_ram_mb AS free_ram_mb,
    floor(h.storage_gb * h.storage_ratio)::int - h.used_storage_gb AS free_storage_gb,
    (SELECT count(*)::int FROM vms m WHERE m.hypervisor_id = h.device_id AND m.state <> 'deleted') AS vms,
    p.name AS ip_pool, ${FREE_ADDRESSES('p')} AS free_addresses
  FROM hypervisors h JOIN devices d ON d.id = h.device_id LEFT JOIN vm_ip_pools p ON p.id = h.ip_pool_id`;

/** Hypervisors and VMs; placement is one statement that picks a host and books it. */
@Injectable()
export class VpsRepository {
  constructor(private readonly db: Database) {}

  hypervisor(id: string): Promise<HypervisorRow | undefined> {
    return this.db.rows<HypervisorRow>(`${HV} WHERE h.device_id = $1`, [id]).then((r) => r[0]);
  }

  hypervisors(f: { siteId?: string; state?: string }): Promise<HypervisorRow[]> {
    return this.db.rows<HypervisorRow>(`${HV} WHERE ($1::uuid IS NULL OR h.site_id = $1) AND ($2::text IS NULL OR h.state = $2) ORDER BY d.name`, [f.siteId ?? null, f.state ?? null]);
  }

  async insertHypervisor(h: { driver: string; deviceId: string; siteId: string; sshHost: string; sshPort: number; sshUser: string; sshKeyEnc: string | null; hostKeySha256: string | null; libvirtUri: string; storagePool: string; vcpus: number; ramMb: number; storageGb: number; cpuRatio: number; ramRatio: number; storageRatio: number; state: string; domainType: string; bridge: string | null; ipPoolId: string | null }): Promise<void> {
    await this.db.rows(
      `INSERT INTO hypervisors (device_id, site_id, ssh_host, ssh_port, ssh_user, ssh_key_enc, host_key_sha256, libvirt_uri, storage_pool, vcpus, ram_mb, storage_gb, cpu_ratio, ram_ratio, storage_ratio, state, driver, domain_type, bridge, ip_pool_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
      [h.deviceId, h.siteId, h.sshHost, h.sshPort, h.sshUser, h.sshKeyEnc, h.hostKeySha256, h.libvirtUri, h.storagePool, h.vcpus, h.ramMb, h.storageGb, h.cpuRatio, h.ramRatio, h.storageRatio, h.state, h.driver, h.domainType, h.bridge, h.ipPoolId],
    );
  }

  async updateHypervisor(id: string, changes: Record<string, unknown>): Promise<void> {
    const cols = Object.keys(changes);
    if (!cols.length) return;
    await this.db.rows(`UPDATE hypervisors SET ${cols.map((c, i) => `${c} = $${i + 2}`).join(', ')}, updated_at = now() WHERE device_id = $1`, [id, ...cols.map((c) => changes[c])]);
  }

  async deleteHypervisor(id: string): Promise<void> {
    await this.db.rows('DELETE FROM hypervisors WHERE device_id = $1', [id]);
  }

  /**
   * Pick the best-fitting enabled hypervisor for `need` and book it, in one statement: the host
   * left with the least free RAM after this VM (then CPU), never a draining or down one, never one
   * of the customer's own hosts when anti-affinity is asked. Hosts another transaction is booking
   * are skipped (never waited for: a placement holds one row lock at most, so none deadlock).
   */
  async book(need: Need): Promise<HypervisorRow | undefined> {
    const [row] = await this.db.rows<{ device_id: string }>(
      `WITH pick AS (
         SELECT h.device_id FROM hypervisors h
          WHERE h.state = 'enabled' AND (cardinality($6::uuid[]) = 0 OR h.site_id = ANY ($6::uuid[]))
            AND floor(h.vcpus * h.cpu_ratio) - h.used_vcpus >= $1
            AND floor(h.ram_mb * h.ram_ratio) - h.used_ram_mb >= $2
            AND floor(h.storage_gb * h.storage_ratio) - h.used_storage_gb >= $3
            AND (NOT $5 OR NOT EXISTS (SELECT 1 FROM vms m WHERE m.hypervisor_id = h.device_id AND m.customer = $4 AND m.state <> 'deleted'))
            AND ${HAS_ADDRESS}
          ORDER BY floor(h.ram_mb * h.ram_ratio) - h.used_ram_mb, floor(h.vcpus * h.cpu_ratio) - h.used_vcpus, h.device_id
          LIMIT 1 FOR UPDATE SKIP LOCKED)
       UPDATE hypervisors h SET used_vcpus = used_vcpus + $1, used_ram_mb = used_ram_mb + $2, used_storage_gb = used_storage_gb + $3, updated_at = now()
         FROM pick WHERE h.device_id = pick.device_id
       RETURNING h.device_id`,
      [need.vcpus, need.ramMb, need.diskGb, need.customer, need.antiAffinity, need.siteIds],
    );
    return row ? this.hypervisor(row.device_id) : undefined;
  }

  /** Whether some host could take `need` right now (no locks): a booking that found none tries again. */
  async anyFits(need: Need): Promise<boolean> {
    const rows = await this.db.rows(
      `SELECT 1 FROM hypervisors h WHERE h.state = 'enabled' AND (cardinality($6::uuid[]) = 0 OR h.site_id = ANY ($6::uuid[]))
          AND floor(h.vcpus * h.cpu_ratio) - h.used_vcpus >= $1 AND floor(h.ram_mb * h.ram_ratio) - h.used_ram_mb >= $2
          AND floor(h.storage_gb * h.storage_ratio) - h.used_storage_gb >= $3
          AND (NOT $5 OR NOT EXISTS (SELECT 1 FROM vms m WHERE m.hypervisor_id = h.device_id AND m.customer = $4 AND m.state <> 'deleted'))
          AND ${HAS_ADDRESS} LIMIT 1`,
      [need.vcpus, need.ramMb, need.diskGb, need.customer, need.antiAffinity, need.siteIds],
    );
    return rows.length > 0;
  }

  /**
   * Book (sign 1) or give back (sign -1) a size change on a host; a booking that would pass its
   * capacity × overcommit books nothing (false).
   */
  async rebook(hypervisorId: string, d: { vcpus: number; ramMb: number; diskGb: number }, sign: 1 | -1): Promise<boolean> {
    const rows = await this.db.rows(
      `UPDATE hypervisors SET used_vcpus = used_vcpus + $2, used_ram_mb = used_ram_mb + $3, used_storage_gb = used_storage_gb + $4, updated_at = now()
        WHERE device_id = $1 AND used_vcpus + $2 <= floor(vcpus * cpu_ratio) AND used_ram_mb + $3 <= floor(ram_mb * ram_ratio) AND used_storage_gb + $4 <= floor(storage_gb * storage_ratio)
        RETURNING device_id`,
      [hypervisorId, sign * d.vcpus, sign * d.ramMb, sign * d.diskGb],
    );
    return rows.length > 0;
  }

  async setVmSize(id: string, s: { vcpus: number; ramMb: number; diskGb: number }): Promise<void> {
    await this.db.rows('UPDATE vms SET vcpus = $2, ram_mb = $3, disk_gb = $4, updated_at = now() WHERE id = $1', [id, s.vcpus, s.ramMb, s.diskGb]);
  }

  /** Give a VM's share back to its host. */
  async release(hypervisorId: string, vm: { vcpus: number; ram_mb: number; disk_gb: number }): Promise<void> {
    await this.db.rows(
      `UPDATE hypervisors SET used_vcpus = greatest(used_vcpus - $2, 0), used_ram_mb = greatest(used_ram_mb - $3, 0), used_storage_gb = greatest(used_storage_gb - $4, 0), updated_at = now() WHERE device_id = $1`,
      [hypervisorId, vm.vcpus, vm.ram_mb, vm.disk_gb],
    );
  }

  async insertVm(v: { name: string; customer: string; hypervisorId: string; siteId: string; vcpus: number; ramMb: number; diskGb: number; antiAffinity: boolean; orderId: string | null; baseImage?: string; hostname?: string }): Promise<VmRow> {
    const [row] = await this.db.rows<VmRow>(
      `INSERT INTO vms (name, customer, hypervisor_id, site_id, vcpus, ram_mb, disk_gb, anti_affinity, order_id, base_image, hostname) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *`,
      [v.name, v.customer, v.hypervisorId, v.siteId, v.vcpus, v.ramMb, v.diskGb, v.antiAffinity, v.orderId, v.baseImage ?? null, v.hostname ?? null],
    );
    return row;
  }

  async setVmJob(id: string, jobId: string): Promise<void> {
    await this.db.rows('UPDATE vms SET job_id = $2, updated_at = now() WHERE id = $1', [id, jobId]);
  }

  /** The VM row, locked for the rest of the transaction. */
  lockVm(id: string): Promise<VmRow | undefined> {
    return this.db.rows<VmRow>('SELECT * FROM vms WHERE id = $1 FOR UPDATE', [id]).then((r) => r[0]);
  }

  /** The host's SSH key (sealed), which views never carry. */
  async sshKey(hypervisorId: string): Promise<string | null> {
    const [row] = await this.db.rows<{ ssh_key_enc: string | null }>('SELECT ssh_key_enc FROM hypervisors WHERE device_id = $1', [hypervisorId]);
    return row?.ssh_key_enc ?? null;
  }

  vms(f: { customer?: string; hypervisorId?: string; state?: string; orderId?: string }, limit: number, before?: { at: string; id: string }): Promise<VmRow[]> {
    return this.db.rows<VmRow>(
      `${VM} WHERE ($1::text IS NULL OR v.customer = $1) AND ($2::uuid IS NULL OR v.hypervisor_id = $2) AND ($3::text IS NULL OR v.state = $3)
         AND ($4::text IS NULL OR v.order_id = $4) AND ($5::timestamptz IS NULL OR (v.created_at, v.id) < ($5, $6)) ORDER BY v.created_at DESC, v.id DESC LIMIT $7`,
      [f.customer ?? null, f.hypervisorId ?? null, f.state ?? null, f.orderId ?? null, before?.at ?? null, before?.id ?? null, limit],
    );
  }

  async updateVm(id: string, changes: Partial<Pick<VmRow, 'state' | 'base_image' | 'job_id' | 'last_error'>>): Promise<void> {
    const cols = Object.keys(changes) as (keyof typeof changes)[];
    await this.db.rows(`UPDATE vms SET ${cols.map((c, i) => `${c} = $${i + 2}`).join(', ')}, updated_at = now() WHERE id = $1`, [id, ...cols.map((c) => changes[c])]);
  }

  /** A host's VMs the status sync looks at: made, not being made or removed. */
  syncableVms(hypervisorId: string): Promise<VmRow[]> {
    return this.db.rows<VmRow>(`SELECT * FROM vms WHERE hypervisor_id = $1 AND state IN ('running', 'stopped', 'paused', 'missing') ORDER BY name`, [hypervisorId]);
  }

  /** The database's clock (what `updated_at` is stamped with; the app's may differ). */
  async now(): Promise<Date> {
    return (await this.db.rows<{ now: Date }>('SELECT now() AS now'))[0]!.now;
  }

  /** Every VM name racksmith ever made on a host (deleted ones too): the rest of what the host runs is not ours. */
  async vmNames(hypervisorId: string): Promise<Set<string>> {
    return new Set((await this.db.rows<{ name: string }>('SELECT name FROM vms WHERE hypervisor_id = $1', [hypervisorId])).map((r) => r.name));
  }

  /**
   * The state the sync saw, unless the VM changed since it looked (a later update, another job)
   * or a job is working on it: false then.
   */
  async syncVmState(vm: VmRow, to: string, seenAt: Date, lastError: string | null): Promise<boolean> {
    const rows = await this.db.rows(
      `UPDATE vms v SET state = $3, last_error = coalesce($5, last_error), updated_at = now()
        WHERE id = $1 AND state = $2 AND updated_at <= $4 AND job_id IS NOT DISTINCT FROM $6
          AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = v.job_id AND j.state IN ('queued', 'running'))
        RETURNING id`,
      [vm.id, vm.state, to, seenAt, lastError, vm.job_id],
    );
    return rows.length > 0;
  }

  async hypervisorSynced(id: string, error: string | null): Promise<void> {
    await this.db.rows('UPDATE hypervisors SET synced_at = now(), sync_error = $2 WHERE device_id = $1', [id, error]);
  }

  vm(id: string): Promise<VmRow | undefined> {
    return this.db.rows<VmRow>(`${VM} WHERE v.id = $1`, [id]).then((r) => r[0]);
  }

  // ---- addresses

  pools(): Promise<PoolRow[]> {
    return this.db.rows<PoolRow>(`${POOL} ORDER BY p.name`);
  }

  pool(name: string): Promise<PoolRow | undefined> {
    return this.db.rows<PoolRow>(`${POOL} WHERE p.name = $1`, [name]).then((r) => r[0]);
  }

  async upsertPool(p: { name: string; siteId: string; network: string; gateway: string; dns: string[]; firstAddress: string; lastAddress: string }): Promise<boolean> {
    const [row] = await this.db.rows<{ created: boolean }>(
      `INSERT INTO vm_ip_pools (name, site_id, network, gateway, dns, first_address, last_address) VALUES ($1, $2, $3, $4, $5::inet[], $6, $7)
       ON CONFLICT (name) DO UPDATE SET site_id = EXCLUDED.site_id, network = EXCLUDED.network, gateway = EXCLUDED.gateway, dns = EXCLUDED.dns,
         first_address = EXCLUDED.first_address, last_address = EXCLUDED.last_address, updated_at = now()
       RETURNING (xmax = 0) AS created`,
      [p.name, p.siteId, p.network, p.gateway, p.dns, p.firstAddress, p.lastAddress],
    );
    return row!.created;
  }

  /** Addresses VMs hold outside the given range (a change of the pool must not strand them). */
  async addressesOutside(poolId: string, network: string, first: string, last: string): Promise<string[]> {
    const rows = await this.db.rows<{ a: string }>(`SELECT host(address) AS a FROM vm_addresses WHERE pool_id = $1 AND NOT (address << $2::cidr AND address BETWEEN $3::inet AND $4::inet)`, [poolId, network, first, last]);
    return rows.map((r) => r.a);
  }

  async deletePool(id: string): Promise<void> {
    await this.db.rows('DELETE FROM vm_ip_pools WHERE id = $1', [id]);
  }

  /**
   * The lowest free address of the pool for the VM (the pool row locked while it is chosen, so
   * two VMs never get one address); null when none is free.
   */
  async allocate(poolId: string, vmId: string): Promise<string | null> {
    await this.db.rows('SELECT 1 FROM vm_ip_pools WHERE id = $1 FOR UPDATE', [poolId]);
    const [row] = await this.db.rows<{ a: string }>(
      `INSERT INTO vm_addresses (pool_id, address, vm_id)
       SELECT $1, c.a, $2 FROM (SELECT p.first_address + g AS a FROM vm_ip_pools p, generate_series(0, p.last_address - p.first_address) g WHERE p.id = $1) c
        WHERE NOT EXISTS (SELECT 1 FROM vm_addresses x WHERE x.pool_id = $1 AND x.address = c.a) ORDER BY c.a LIMIT 1
       RETURNING host(address) AS a`,
      [poolId, vmId],
    );
    return row?.a ?? null;
  }

  async releaseAddress(vmId: string): Promise<void> {
    await this.db.rows('DELETE FROM vm_addresses WHERE vm_id = $1', [vmId]);
  }

  async vmNetwork(vmId: string): Promise<VmNetwork | null> {
    const [row] = await this.db.rows<VmNetwork>(
      `SELECT host(a.address) AS address, masklen(p.network) AS prefix, host(p.gateway) AS gateway, array(SELECT host(d) FROM unnest(p.dns) d) AS dns
         FROM vm_addresses a JOIN vm_ip_pools p ON p.id = a.pool_id WHERE a.vm_id = $1`,
      [vmId],
    );
    return row ?? null;
  }

  async setVmState(id: string, state: string, lastError?: string | null): Promise<void> {
    await this.db.rows('UPDATE vms SET state = $2, last_error = coalesce($3, last_error), updated_at = now() WHERE id = $1', [id, state, lastError ?? null]);
  }
}
