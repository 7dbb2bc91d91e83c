import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Rented servers get a lifecycle state, a maintenance flag and a last error; every change of state
 * is kept in server_transitions with its cause. The database refuses a move the state machine
 * does not allow (a backstop: the service checks first and explains).
 */
export class ServerLifecycle1732490000000 implements MigrationInterface {
  name = 'ServerLifecycle1732490000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE devices
      ADD COLUMN lifecycle text CHECK (lifecycle IN ('new', 'inspecting', 'available', 'reserved', 'deploying', 'active', 'suspended', 'wiping', 'failed', 'retired')),
      ADD COLUMN maintenance boolean NOT NULL DEFAULT false,
      ADD COLUMN maintenance_reason text,
      ADD COLUMN last_error text`);
    await q.query(`UPDATE devices SET lifecycle = 'new' WHERE role = 'rented-server'`);
    await q.query(`
      CREATE FUNCTION devices_lifecycle() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.role = 'rented-server' AND NEW.lifecycle IS NULL THEN
          NEW.lifecycle := 'new';
        ELSIF NEW.role <> 'rented-server' THEN
          NEW.lifecycle := NULL;
        END IF;
        IF TG_OP = 'UPDATE' AND OLD.lifecycle IS NOT NULL AND NEW.lifecycle IS DISTINCT FROM OLD.lifecycle AND NEW.lifecycle IS NOT NULL
           AND NOT (OLD.lifecycle || '>' || NEW.lifecycle = ANY (ARRAY[
             'new>inspecting', 'new>available', 'new>retired',
             'inspecting>available', 'inspecting>failed',
             'available>reserved', 'available>deploying', 'available>inspecting', 'available>wiping', 'available>retired',
             'reserved>deploying', 'reserved>available', 'reserved>failed',
             'deploying>active', 'deploying>failed',
             'active>suspended', 'active>deploying', 'active>wiping',
             'suspended>active', 'suspended>wiping',
             'wiping>available', 'wiping>failed',
             'failed>new', 'failed>inspecting', 'failed>available', 'failed>deploying', 'failed>wiping', 'failed>retired',
             'retired>new'])) THEN
          RAISE EXCEPTION 'illegal lifecycle transition % -> %', OLD.lifecycle, NEW.lifecycle
            USING ERRCODE = 'RS003', DETAIL = json_build_object('state', OLD.lifecycle, 'requested', NEW.lifecycle)::text;
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER devices_lifecycle BEFORE INSERT OR UPDATE OF lifecycle, role ON devices
      FOR EACH ROW EXECUTE FUNCTION devices_lifecycle()`);
    await q.query(`
      CREATE TABLE server_transitions (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        device_id uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        from_state text NOT NULL,
        to_state text NOT NULL,
        cause_type text NOT NULL CHECK (cause_type IN ('user', 'job', 'billing', 'system')),
        cause_id text,
        actor text NOT NULL,
        note text,
        at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query('CREATE INDEX server_transitions_device ON server_transitions (device_id, id)');
    await q.query("CREATE INDEX devices_lifecycle_idx ON devices (site_id, lifecycle) WHERE lifecycle IS NOT NULL");
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE server_transitions');
    await q.query('DROP TRIGGER devices_lifecycle ON devices');
    await q.query('DROP FUNCTION devices_lifecycle()');
    await q.query('ALTER TABLE devices DROP COLUMN lifecycle, DROP COLUMN maintenance, DROP COLUMN maintenance_reason, DROP COLUMN last_error');
  }
}
