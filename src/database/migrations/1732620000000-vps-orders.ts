import type { MigrationInterface, QueryRunner } from 'typeorm';

/** A paid VPS order's VM. */
export class VpsOrders1732620000000 implements MigrationInterface {
  name = 'VpsOrders1732620000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE orders ADD COLUMN vm_id uuid REFERENCES vms (id)');
    await q.query('CREATE UNIQUE INDEX orders_one_per_vm ON orders (vm_id) WHERE vm_id IS NOT NULL');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE orders DROP COLUMN vm_id');
  }
}
