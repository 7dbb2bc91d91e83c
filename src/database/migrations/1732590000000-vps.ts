import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * VPS: hypervisors (a device with role hypervisor, plus capacity, overcommit, state and how to
 * reach it over SSH) and the VMs placed on them. What a hypervisor has handed out is kept on its
 * row, changed in the transaction that places or removes a VM, and can never pass its capacity
 * times its overcommit ratio: the database refuses an overbooking whatever the code does.
 */
export class Vps1732590000000 implements MigrationInterface {
  name = 'Vps1732590000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE hypervisors (
        device_id uuid PRIMARY KEY REFERENCES devices (id) ON DELETE RESTRICT,
        site_id uuid NOT NULL REFERENCES sites (id),
        state text NOT NULL DEFAULT 'enabled' CHECK (state IN ('enabled', 'draining', 'down')),
        ssh_host text NOT NULL CHECK (length(ssh_host) BETWEEN 1 AND 255),
        ssh_port int NOT NULL DEFAULT 22 CHECK (ssh_port BETWEEN 1 AND 65535),
        ssh_user text NOT NULL DEFAULT 'root',
        ssh_key_enc text,
        host_key_sha256 text CHECK (host_key_sha256 ~ '^[0-9a-f]{64}$'),
        libvirt_uri text NOT NULL DEFAULT 'qemu:///system',
        storage_pool text NOT NULL DEFAULT 'default',
        vcpus int NOT NULL CHECK (vcpus > 0),
        ram_mb int NOT NULL CHECK (ram_mb > 0),
        storage_gb int NOT NULL CHECK (storage_gb > 0),
        cpu_ratio numeric(5,2) NOT NULL DEFAULT 4 CHECK (cpu_ratio >= 1),
        ram_ratio numeric(5,2) NOT NULL DEFAULT 1 CHECK (ram_ratio >= 1),
        storage_ratio numeric(5,2) NOT NULL DEFAULT 1 CHECK (storage_ratio >= 1),
        used_vcpus int NOT NULL DEFAULT 0 CHECK (used_vcpus >= 0),
        used_ram_mb int NOT NULL DEFAULT 0 CHECK (used_ram_mb >= 0),
        used_storage_gb int NOT NULL DEFAULT 0 CHECK (used_storage_gb >= 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT hypervisors_no_overbooking CHECK (
          used_vcpus <= floor(vcpus * cpu_ratio) AND used_ram_mb <= floor(ram_mb * ram_ratio) AND used_storage_gb <= floor(storage_gb * storage_ratio))
      )`);
    await q.query('CREATE INDEX hypervisors_site ON hypervisors (site_id, state)');
    await q.query(`
      CREATE TABLE vms (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
        customer text NOT NULL,
        hypervisor_id uuid NOT NULL REFERENCES hypervisors (device_id),
        site_id uuid NOT NULL REFERENCES sites (id),
        vcpus int NOT NULL CHECK (vcpus > 0),
        ram_mb int NOT NULL CHECK (ram_mb > 0),
        disk_gb int NOT NULL CHECK (disk_gb > 0),
        anti_affinity boolean NOT NULL DEFAULT false,
        state text NOT NULL DEFAULT 'placed' CHECK (state IN ('placed', 'creating', 'running', 'stopped', 'paused', 'deleting', 'deleted', 'failed')),
        order_id text,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX vms_hypervisor ON vms (hypervisor_id) WHERE state <> 'deleted'`);
    await q.query(`CREATE INDEX vms_customer ON vms (customer, hypervisor_id) WHERE state <> 'deleted'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE vms');
    await q.query('DROP TABLE hypervisors');
  }
}
