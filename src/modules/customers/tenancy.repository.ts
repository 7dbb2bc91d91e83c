import { Injectable } from '@nestjs/common';
import { Database } from '../../database/database';

/** A rented server as its customer sees it. */
export interface OwnedServerRow {
  id: string;
  name: string;
  site: string;
  lifecycle: string;
  maintenance: boolean;
  order_id: string | null;
  order_state: string | null;
  /** The plan of the order that holds the server, and its spec (what a reinstall may choose). */
  plan: string | null;
  plan_spec: Record<string, unknown> | null;
  power_state: string | null;
  reachable: boolean | null;
  power_checked_at: Date | null;
  hostname: string | null;
  network: { mode: string; address?: string; gateway?: string; dns?: string[] } | null;
  macs: string[];
  job_id: string | null;
  job_kind: string | null;
  job_state: string | null;
}

export interface OwnedVmRow {
  id: string;
  name: string;
  hostname: string | null;
  site: string;
  vcpus: number;
  ram_mb: number;
  disk_gb: number;
  base_image: string | null;
  ipv4: string | null;
  state: string;
  job_id: string | null;
  created_at: Date;
}

export interface OwnedOrderRow {
  id: string;
  plan: string | null;
  kind: string | null;
  state: string;
  server_id: string | null;
  vm_id: string | null;
  last_error: string | null;
  paid_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/**
 * What a customer owns, read with the customer id in every WHERE: a server is theirs while a live
 * order of theirs holds it or the inventory names them its owner; a VM while it is theirs and not
 * deleted. Anything else is not found, whoever asks.
 */
@Injectable()
export class TenancyRepository {
  constructor(private readonly db: Database) {}

  private servers(customer: string, id?: string): Promise<OwnedServerRow[]> {
    return this.db.rows<OwnedServerRow>(
      `SELECT d.id, d.name, s.code AS site, d.lifecycle, d.maintenance, o.id AS order_id, o.state AS order_state,
              o.plan, p.spec AS plan_spec, b.power_state, b.reachable, b.checked_at AS power_checked_at,
              i.params->>'hostname' AS hostname, i.params->'network' AS network,
              coalesce((SELECT array_agg(n.mac::text ORDER BY n.mac) FROM nics n WHERE n.device_id = d.id), '{}') AS macs,
              j.id AS job_id, j.kind AS job_kind, j.state AS job_state
         FROM devices d
         JOIN sites s ON s.id = d.site_id
         LEFT JOIN LATERAL (SELECT o.id, o.state, o.plan FROM orders o WHERE o.server_id = d.id AND o.customer = $1 AND o.state NOT IN ('terminated', 'failed')
                            ORDER BY o.created_at DESC LIMIT 1) o ON true
         LEFT JOIN billing_plans p ON p.code = o.plan
         LEFT JOIN bmc_status b ON b.device_id = d.id
         LEFT JOIN LATERAL (SELECT j.params FROM jobs j WHERE j.server_id = d.id AND j.kind = 'install' AND j.state <> 'cancelled'
                            ORDER BY j.created_at DESC LIMIT 1) i ON true
         LEFT JOIN LATERAL (SELECT j.id, j.kind, j.state FROM jobs j WHERE j.server_id = d.id AND j.state IN ('queued', 'running')
                            ORDER BY j.created_at LIMIT 1) j ON true
        WHERE d.role = 'rented-server' AND (d.customer_id = $1 OR o.id IS NOT NULL) AND ($2::uuid IS NULL OR d.id = $2)
        ORDER BY d.name, d.id`,
      [customer, id ?? null],
    );
  }

  listServers(customer: string): Promise<OwnedServerRow[]> {
    return this.servers(customer);
  }

  async server(customer: string, id: string): Promise<OwnedServerRow | null> {
    return (await this.servers(customer, id))[0] ?? null;
  }

  private vms(customer: string, id?: string): Promise<OwnedVmRow[]> {
    return this.db.rows<OwnedVmRow>(
      `SELECT v.id, v.name, v.hostname, s.code AS site, v.vcpus, v.ram_mb, v.disk_gb, v.base_image, host(a.address) AS ipv4, v.state, v.job_id, v.created_at
         FROM vms v JOIN sites s ON s.id = v.site_id
         LEFT JOIN vm_addresses a ON a.vm_id = v.id
        WHERE v.customer = $1 AND v.state <> 'deleted' AND ($2::uuid IS NULL OR v.id = $2)
        ORDER BY v.name`,
      [customer, id ?? null],
    );
  }

  listVms(customer: string): Promise<OwnedVmRow[]> {
    return this.vms(customer);
  }

  async vm(customer: string, id: string): Promise<OwnedVmRow | null> {
    return (await this.vms(customer, id))[0] ?? null;
  }

  private orders(customer: string, id?: string): Promise<OwnedOrderRow[]> {
    return this.db.rows<OwnedOrderRow>(
      `SELECT o.id, o.plan, o.kind, o.state, o.server_id, o.vm_id,
              o.last_error, o.paid_at, o.created_at, o.updated_at
         FROM orders o WHERE o.customer = $1 AND ($2::text IS NULL OR o.id = $2) ORDER BY o.created_at DESC, o.id`,
      [customer, id ?? null],
    );
  }

  listOrders(customer: string): Promise<OwnedOrderRow[]> {
    return this.orders(customer);
  }

  async order(customer: string, id: string): Promise<OwnedOrderRow | null> {
    return (await this.orders(customer, id))[0] ?? null;
  }

  /**
   * The ids of the jobs a customer may follow, newest first: those they started themselves and
   * those of their orders (provisioning and install).
   */
  ownedJobIds(customer: string, id?: string, limit = 50): Promise<string[]> {
    return this.db
      .rows<{ id: string }>(
        `SELECT j.id FROM jobs j
          WHERE (j.created_by = 'customer:' || $1
                 OR EXISTS (SELECT 1 FROM orders o WHERE o.customer = $1 AND (o.job_id = j.id OR o.install_job_id = j.id)))
            AND ($2::uuid IS NULL OR j.id = $2)
          ORDER BY j.created_at DESC, j.id LIMIT $3`,
        [customer, id ?? null, limit],
      )
      .then((rows) => rows.map((r) => r.id));
  }
}
