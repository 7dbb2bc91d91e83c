import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Console grants for VMs: a customer's time-boxed access to a VM's serial console through the
 * web terminal (the same model as IPKVM grants, without a BMC account: the token is the access).
 */
export class VmConsole1732630000000 implements MigrationInterface {
  name = 'VmConsole1732630000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE vm_console_grants (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        vm_id uuid NOT NULL REFERENCES vms (id),
        customer text NOT NULL CHECK (length(customer) BETWEEN 1 AND 200),
        console_token_hash text NOT NULL,
        expires_at timestamptz NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz,
        revoked_by text,
        revoke_reason text
      )`);
    await q.query('CREATE INDEX vm_console_grants_vm ON vm_console_grants (vm_id, created_at DESC)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE vm_console_grants');
  }
}
