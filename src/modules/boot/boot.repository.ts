import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';

export interface BootNetworkRow {
  id: string;
  site_id: string;
  name: string;
  cidr: string;
  gateway: string | null;
  dns: string[];
  domain: string | null;
  lease_seconds: number;
  created_at: Date;
}

export interface TargetRow {
  id: string;
  name: string;
  lifecycle: string | null;
  ip: string | null;
  network_id: string | null;
  /** The provisioning network the reserved address is in. */
  network: Pick<BootNetworkRow, 'id' | 'cidr' | 'gateway' | 'dns' | 'domain' | 'lease_seconds'> | null;
  install_job: string | null;
}

const NETWORK_COLUMNS = `id, site_id, name, cidr::text AS cidr, host(gateway) AS gateway, array(SELECT host(x) FROM unnest(dns) x) AS dns, domain, lease_seconds, created_at`;

/** Provisioning networks, NIC reservations and DHCP leases. */
@Injectable()
export class BootRepository {
  constructor(private readonly db: Database) {}

  networks(siteId?: string): Promise<BootNetworkRow[]> {
    return this.db.rows(`SELECT ${NETWORK_COLUMNS} FROM boot_networks WHERE $1::uuid IS NULL OR site_id = $1 ORDER BY name`, [siteId ?? null]);
  }

  async network(id: string): Promise<BootNetworkRow | null> {
    const [row] = await this.db.rows<BootNetworkRow>(`SELECT ${NETWORK_COLUMNS} FROM boot_networks WHERE id = $1`, [id]);
    return row ?? null;
  }

  async createNetwork(n: { siteId: string; name: string; cidr: string; gateway: string | null; dns: string[]; domain: string | null; leaseSeconds: number }): Promise<BootNetworkRow> {
    const [row] = await this.db.rows<BootNetworkRow>(
      `INSERT INTO boot_networks (site_id, name, cidr, gateway, dns, domain, lease_seconds) VALUES ($1, $2, $3, $4, $5::inet[], $6, $7) RETURNING ${NETWORK_COLUMNS}`,
      [n.siteId, n.name, n.cidr, n.gateway, n.dns, n.domain, n.leaseSeconds],
    );
    return row!;
  }

  async deleteNetwork(id: string): Promise<boolean> {
    const rows = await this.db.rows<{ id: string }>('DELETE FROM boot_networks WHERE id = $1 RETURNING id', [id]);
    return rows.length > 0;
  }

  /** The device a MAC belongs to, its reservation and network, and its install job waiting to boot. */
  async target(mac: string): Promise<TargetRow | null> {
    const [row] = await this.db.rows<TargetRow>(
      `SELECT d.id, d.name, d.lifecycle, host(n.ip) AS ip, bn.id AS network_id,
              CASE WHEN bn.id IS NULL THEN NULL ELSE json_build_object('id', bn.id, 'cidr', bn.cidr::text, 'gateway', host(bn.gateway),
                'dns', array(SELECT host(x) FROM unnest(bn.dns) x), 'domain', bn.domain, 'lease_seconds', bn.lease_seconds) END AS network,
              (SELECT j.id FROM jobs j WHERE j.server_id = d.id AND j.params ? 'callbackToken' AND j.state IN ('queued', 'running')
                ORDER BY j.created_at DESC LIMIT 1) AS install_job
         FROM nics n JOIN devices d ON d.id = n.device_id
         LEFT JOIN boot_networks bn ON n.ip IS NOT NULL AND n.ip << bn.cidr
        WHERE n.mac = $1::macaddr`,
      [mac],
    );
    return row ?? null;
  }

  async lease(l: { mac: string; networkId: string; ip: string; deviceId: string; state: 'bound' | 'released' | 'declined'; seconds: number }): Promise<void> {
    await this.db.rows(
      `INSERT INTO dhcp_leases (mac, network_id, ip, device_id, state, expires_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 = 'bound' THEN now() + make_interval(secs => $6) END, now())
       ON CONFLICT (mac, network_id) DO UPDATE SET ip = EXCLUDED.ip, device_id = EXCLUDED.device_id, state = EXCLUDED.state, expires_at = EXCLUDED.expires_at, updated_at = now()`,
      [l.mac, l.networkId, l.ip, l.deviceId, l.state, l.seconds],
    );
  }

  async leaseByIp(ip: string): Promise<{ mac: string } | null> {
    const [row] = await this.db.rows<{ mac: string }>(`SELECT mac::text AS mac FROM dhcp_leases WHERE ip = $1::inet AND state = 'bound' ORDER BY updated_at DESC LIMIT 1`, [ip]).catch(() => []);
    return row ?? null;
  }

  /** An unknown MAC asked to boot: one row per MAC, counted. */
  async discovered(mac: string, arch: number | null, vendorClass: string | null): Promise<void> {
    await this.db.rows(
      `INSERT INTO discovered_macs (mac, arch, vendor_class) VALUES ($1, $2, $3)
       ON CONFLICT (mac) DO UPDATE SET last_seen = now(), requests = discovered_macs.requests + 1, arch = EXCLUDED.arch, vendor_class = EXCLUDED.vendor_class`,
      [mac, arch, vendorClass],
    );
  }

  /** Discovered MACs not (yet) in the inventory, newest first. */
  discoveries(): Promise<{ mac: string; first_seen: Date; last_seen: Date; requests: number; arch: number | null; vendor_class: string | null }[]> {
    return this.db.rows(
      `SELECT mac::text AS mac, first_seen, last_seen, requests, arch, vendor_class FROM discovered_macs m
        WHERE NOT EXISTS (SELECT 1 FROM nics n WHERE n.mac = m.mac) ORDER BY last_seen DESC LIMIT 1000`,
    );
  }

  leases(networkId: string): Promise<{ mac: string; ip: string; device_id: string | null; state: string; expires_at: Date | null; updated_at: Date }[]> {
    return this.db.rows(`SELECT mac::text AS mac, host(ip) AS ip, device_id, state, expires_at, updated_at FROM dhcp_leases WHERE network_id = $1 ORDER BY ip`, [networkId]);
  }
}
