import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * IPv4 addresses for VMs: pools (a subnet, its gateway and DNS, the range VMs get addresses from)
 * that hypervisors' bridges serve; each VM holds at most one address, one VM per address.
 */
export class VmAddresses1732640000000 implements MigrationInterface {
  name = 'VmAddresses1732640000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE vm_ip_pools (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
        site_id uuid NOT NULL REFERENCES sites (id),
        network cidr NOT NULL CHECK (family(network) = 4),
        gateway inet NOT NULL,
        dns inet[] NOT NULL DEFAULT '{}',
        first_address inet NOT NULL,
        last_address inet NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT vm_ip_pools_gateway_in_network CHECK (gateway << network),
        CONSTRAINT vm_ip_pools_range CHECK (first_address << network AND last_address << network AND first_address <= last_address
          AND NOT (gateway BETWEEN first_address AND last_address))
      )`);
    await q.query(`
      CREATE TABLE vm_addresses (
        pool_id uuid NOT NULL REFERENCES vm_ip_pools (id),
        address inet NOT NULL,
        vm_id uuid NOT NULL UNIQUE REFERENCES vms (id),
        PRIMARY KEY (pool_id, address)
      )`);
    await q.query('ALTER TABLE hypervisors ADD COLUMN ip_pool_id uuid REFERENCES vm_ip_pools (id)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE hypervisors DROP COLUMN ip_pool_id');
    await q.query('DROP TABLE vm_addresses');
    await q.query('DROP TABLE vm_ip_pools');
  }
}
