import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The DCIM model: sites, racks, hardware models, devices and their NICs, power panels, feeds,
 * PDUs and the power connections between PDUs and devices. The invariants live here, in the
 * database, so no code path and no race can break them:
 *   - rack units: an exclusion constraint over (rack, unit range, face range);
 *   - a device fits inside its rack, and stays in the rack's site: trigger + composite FK;
 *   - unique MACs, serials, asset tags: unique indexes (serial/asset tag case-insensitive);
 *   - power: a trigger that locks the feed and the rack and checks the sums (SQLSTATE RS001).
 */
export class Inventory1732470000000 implements MigrationInterface {
  name = 'Inventory1732470000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('CREATE EXTENSION IF NOT EXISTS btree_gist');

    await q.query(`
      CREATE TABLE sites (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        code text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9-]{0,31}$'),
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        address text,
        timezone text NOT NULL DEFAULT 'Europe/Moscow',
        visit_opens time NOT NULL DEFAULT '09:00',
        visit_closes time NOT NULL DEFAULT '21:00',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK (visit_opens < visit_closes)
      )`);

    await q.query(`
      CREATE TABLE racks (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        site_id uuid NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
        location text,
        height_u int NOT NULL DEFAULT 42 CHECK (height_u BETWEEN 1 AND 60),
        power_budget_w int CHECK (power_budget_w >= 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (site_id, name),
        UNIQUE (id, site_id)
      )`);

    await q.query(`
      CREATE TABLE hardware_models (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        vendor text NOT NULL CHECK (length(vendor) BETWEEN 1 AND 100),
        model text NOT NULL CHECK (length(model) BETWEEN 1 AND 100),
        height_u int NOT NULL CHECK (height_u BETWEEN 0 AND 20),
        full_depth boolean NOT NULL DEFAULT true,
        max_draw_w int NOT NULL DEFAULT 0 CHECK (max_draw_w >= 0),
        typical_draw_w int NOT NULL DEFAULT 0 CHECK (typical_draw_w >= 0),
        bmc_driver text CHECK (bmc_driver IN ('ipmitool', 'redfish', 'fake')),
        cpu text,
        cpu_cores int CHECK (cpu_cores > 0),
        ram_gb int CHECK (ram_gb > 0),
        disks jsonb NOT NULL DEFAULT '[]'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (vendor, model),
        CHECK (typical_draw_w <= max_draw_w)
      )`);

    await q.query(`
      CREATE TABLE devices (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        site_id uuid NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        role text NOT NULL CHECK (role IN ('rented-server', 'colocation', 'hypervisor', 'network', 'pdu')),
        model_id uuid NOT NULL REFERENCES hardware_models (id) ON DELETE RESTRICT,
        asset_tag text,
        serial text,
        customer_id text CHECK (length(customer_id) BETWEEN 1 AND 100),
        rack_id uuid,
        position int CHECK (position >= 1),
        face text CHECK (face IN ('front', 'rear')),
        -- copied from the model when placed, so the database can check the units on its own
        height_u int NOT NULL CHECK (height_u BETWEEN 0 AND 20),
        full_depth boolean NOT NULL,
        units int4range GENERATED ALWAYS AS (int4range(position, position + height_u)) STORED,
        faces int4range GENERATED ALWAYS AS (
          CASE WHEN full_depth THEN int4range(0, 2) WHEN face = 'front' THEN int4range(0, 1) ELSE int4range(1, 2) END
        ) STORED,
        bmc_address text,
        bmc_driver text CHECK (bmc_driver IN ('ipmitool', 'redfish', 'fake')),
        bmc_username text,
        -- AES-256-GCM, base64 (iv | tag | ciphertext); never returned by the API
        bmc_password_enc text,
        notes text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        FOREIGN KEY (rack_id, site_id) REFERENCES racks (id, site_id) ON DELETE RESTRICT,
        CHECK ((rack_id IS NULL) = (position IS NULL) AND (rack_id IS NULL) = (face IS NULL)),
        CHECK (role <> 'colocation' OR customer_id IS NOT NULL),
        CONSTRAINT devices_rack_units_free EXCLUDE USING gist (rack_id WITH =, units WITH &&, faces WITH &&)
      )`);
    await q.query('CREATE UNIQUE INDEX devices_serial_key ON devices (lower(serial)) WHERE serial IS NOT NULL');
    await q.query('CREATE UNIQUE INDEX devices_asset_tag_key ON devices (lower(asset_tag)) WHERE asset_tag IS NOT NULL');
    await q.query('CREATE UNIQUE INDEX devices_site_name_key ON devices (site_id, lower(name))');
    await q.query('CREATE INDEX devices_rack ON devices (rack_id)');
    await q.query('CREATE INDEX devices_customer ON devices (customer_id) WHERE customer_id IS NOT NULL');

    // A device fits inside its rack; a rack cannot shrink under its devices.
    await q.query(`
      CREATE FUNCTION devices_fit_rack() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE rack_height int;
      BEGIN
        IF NEW.rack_id IS NULL THEN RETURN NEW; END IF;
        SELECT height_u INTO rack_height FROM racks WHERE id = NEW.rack_id FOR SHARE;
        IF NEW.position + GREATEST(NEW.height_u, 1) - 1 > rack_height THEN
          RAISE EXCEPTION 'device does not fit: units % to % in a rack of % units',
            NEW.position, NEW.position + GREATEST(NEW.height_u, 1) - 1, rack_height
            USING ERRCODE = 'RS002',
                  DETAIL = json_build_object('position', NEW.position, 'heightU', NEW.height_u, 'rackHeightU', rack_height)::text;
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER devices_fit_rack BEFORE INSERT OR UPDATE OF rack_id, position, height_u ON devices
      FOR EACH ROW EXECUTE FUNCTION devices_fit_rack()`);
    await q.query(`
      CREATE FUNCTION racks_keep_devices() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE top int;
      BEGIN
        SELECT max(position + GREATEST(height_u, 1) - 1) INTO top FROM devices WHERE rack_id = NEW.id;
        IF top > NEW.height_u THEN
          RAISE EXCEPTION 'rack cannot shrink to % units: a device reaches unit %', NEW.height_u, top
            USING ERRCODE = 'RS002', DETAIL = json_build_object('rackHeightU', NEW.height_u, 'highestUsedUnit', top)::text;
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER racks_keep_devices BEFORE UPDATE OF height_u ON racks
      FOR EACH ROW WHEN (NEW.height_u < OLD.height_u) EXECUTE FUNCTION racks_keep_devices()`);

    await q.query(`
      CREATE TABLE nics (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        device_id uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 50),
        mac macaddr NOT NULL,
        pxe boolean NOT NULL DEFAULT false,
        CONSTRAINT nics_mac_key UNIQUE (mac),
        UNIQUE (device_id, name)
      )`);
    await q.query('CREATE UNIQUE INDEX nics_one_pxe ON nics (device_id) WHERE pxe');

    await q.query(`
      CREATE TABLE power_panels (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        site_id uuid NOT NULL REFERENCES sites (id) ON DELETE RESTRICT,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (site_id, name)
      )`);
    await q.query(`
      CREATE TABLE power_feeds (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        panel_id uuid NOT NULL REFERENCES power_panels (id) ON DELETE RESTRICT,
        rack_id uuid REFERENCES racks (id) ON DELETE RESTRICT,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
        voltage int NOT NULL CHECK (voltage BETWEEN 1 AND 1000),
        amperage int NOT NULL CHECK (amperage BETWEEN 1 AND 1000),
        phase text NOT NULL DEFAULT 'single' CHECK (phase IN ('single', 'three')),
        max_utilization_pct int NOT NULL DEFAULT 80 CHECK (max_utilization_pct BETWEEN 1 AND 100),
        budget_w int GENERATED ALWAYS AS (
          floor(voltage * amperage * (CASE WHEN phase = 'three' THEN 1.7320508 ELSE 1 END) * max_utilization_pct / 100)::int
        ) STORED,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (panel_id, name)
      )`);
    await q.query(`
      CREATE TABLE pdus (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        feed_id uuid NOT NULL REFERENCES power_feeds (id) ON DELETE RESTRICT,
        -- the PDU as a device in a rack (role pdu), when it is racked
        device_id uuid UNIQUE REFERENCES devices (id) ON DELETE SET NULL,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
        outlets int NOT NULL DEFAULT 24 CHECK (outlets BETWEEN 1 AND 256),
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (feed_id, name)
      )`);
    await q.query(`
      CREATE TABLE power_connections (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        device_id uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        pdu_id uuid NOT NULL REFERENCES pdus (id) ON DELETE RESTRICT,
        outlet int CHECK (outlet >= 1),
        allocated_w int NOT NULL CHECK (allocated_w >= 0),
        max_w int NOT NULL CHECK (max_w >= 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (device_id, pdu_id),
        CONSTRAINT power_connections_outlet_key UNIQUE (pdu_id, outlet),
        CHECK (allocated_w <= max_w)
      )`);
    await q.query('CREATE INDEX power_connections_pdu ON power_connections (pdu_id)');

    // Allocated draw never exceeds the feed's budget nor the rack's. The feed and rack rows are
    // locked first, so concurrent allocations on one feed or rack are checked one after another.
    await q.query(`
      CREATE FUNCTION power_check_budgets(p_feed uuid, p_rack uuid, p_requested int) RETURNS void LANGUAGE plpgsql AS $$
      DECLARE budget int; used int;
      BEGIN
        IF p_feed IS NOT NULL THEN
          SELECT budget_w INTO budget FROM power_feeds WHERE id = p_feed FOR UPDATE;
          SELECT coalesce(sum(c.allocated_w), 0) INTO used FROM power_connections c JOIN pdus p ON p.id = c.pdu_id WHERE p.feed_id = p_feed;
          IF used > budget THEN
            RAISE EXCEPTION 'power feed budget exceeded: % W allocated of % W', used, budget
              USING ERRCODE = 'RS001', DETAIL = json_build_object('scope', 'feed', 'id', p_feed, 'budgetW', budget, 'allocatedW', used - p_requested, 'requestedW', p_requested)::text;
          END IF;
        END IF;
        IF p_rack IS NOT NULL THEN
          SELECT power_budget_w INTO budget FROM racks WHERE id = p_rack FOR UPDATE;
          IF budget IS NOT NULL THEN
            SELECT coalesce(sum(c.allocated_w), 0) INTO used FROM power_connections c JOIN devices d ON d.id = c.device_id WHERE d.rack_id = p_rack;
            IF used > budget THEN
              RAISE EXCEPTION 'rack power budget exceeded: % W allocated of % W', used, budget
                USING ERRCODE = 'RS001', DETAIL = json_build_object('scope', 'rack', 'id', p_rack, 'budgetW', budget, 'allocatedW', used - p_requested, 'requestedW', p_requested)::text;
            END IF;
          END IF;
        END IF;
      END $$`);
    // Lock before the row is written (BEFORE), check after (AFTER, when the sum includes it).
    await q.query(`
      CREATE FUNCTION power_connections_lock() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM 1 FROM power_feeds f JOIN pdus p ON p.feed_id = f.id WHERE p.id = NEW.pdu_id FOR UPDATE OF f;
        PERFORM 1 FROM racks r JOIN devices d ON d.rack_id = r.id WHERE d.id = NEW.device_id FOR UPDATE OF r;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER power_connections_lock BEFORE INSERT OR UPDATE ON power_connections
      FOR EACH ROW EXECUTE FUNCTION power_connections_lock()`);
    await q.query(`
      CREATE FUNCTION power_connections_check() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE feed uuid; rack uuid; delta int;
      BEGIN
        SELECT feed_id INTO feed FROM pdus WHERE id = NEW.pdu_id;
        SELECT rack_id INTO rack FROM devices WHERE id = NEW.device_id;
        delta := NEW.allocated_w - CASE WHEN TG_OP = 'UPDATE' THEN OLD.allocated_w ELSE 0 END;
        IF delta > 0 OR TG_OP = 'INSERT' OR NEW.pdu_id IS DISTINCT FROM OLD.pdu_id THEN
          PERFORM power_check_budgets(feed, rack, NEW.allocated_w);
        END IF;
        RETURN NULL;
      END $$`);
    await q.query(`CREATE TRIGGER power_connections_check AFTER INSERT OR UPDATE ON power_connections
      FOR EACH ROW EXECUTE FUNCTION power_connections_check()`);
    // A device with allocations moving into a rack, a budget lowered: checked the same way.
    await q.query(`
      CREATE FUNCTION devices_power_check() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE requested int;
      BEGIN
        IF NEW.rack_id IS NOT NULL AND NEW.rack_id IS DISTINCT FROM OLD.rack_id THEN
          SELECT coalesce(sum(allocated_w), 0) INTO requested FROM power_connections WHERE device_id = NEW.id;
          IF requested > 0 THEN PERFORM power_check_budgets(NULL, NEW.rack_id, requested); END IF;
        END IF;
        RETURN NULL;
      END $$`);
    await q.query(`CREATE TRIGGER devices_power_check AFTER UPDATE OF rack_id ON devices
      FOR EACH ROW EXECUTE FUNCTION devices_power_check()`);
    await q.query(`
      CREATE FUNCTION budgets_lowered() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_TABLE_NAME = 'racks' THEN PERFORM power_check_budgets(NULL, NEW.id, 0);
        ELSE PERFORM power_check_budgets(NEW.id, NULL, 0); END IF;
        RETURN NULL;
      END $$`);
    await q.query(`CREATE TRIGGER racks_budget_lowered AFTER UPDATE OF power_budget_w ON racks
      FOR EACH ROW WHEN (NEW.power_budget_w < OLD.power_budget_w OR (OLD.power_budget_w IS NULL AND NEW.power_budget_w IS NOT NULL))
      EXECUTE FUNCTION budgets_lowered()`);
    await q.query(`CREATE TRIGGER feeds_budget_lowered AFTER UPDATE ON power_feeds
      FOR EACH ROW WHEN (NEW.budget_w < OLD.budget_w) EXECUTE FUNCTION budgets_lowered()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE power_connections, pdus, power_feeds, power_panels, nics, devices, hardware_models, racks, sites CASCADE');
    await q.query('DROP FUNCTION IF EXISTS power_check_budgets(uuid, uuid, int), power_connections_lock(), power_connections_check(), devices_power_check(), budgets_lowered(), devices_fit_rack(), racks_keep_devices()');
  }
}
