import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';
import { runCli, ROOT } from '../support/cli';
import { InventoryImportService } from '../../src/modules/inventory/inventory-import.service';
import { InventoryFileError, loadInventory, writeInventory } from '../../src/modules/inventory/inventory-files';

let t: TestApp;
let importer: InventoryImportService;
beforeAll(async () => {
  t = await startTestApp();
  importer = t.app.get(InventoryImportService);
});
afterAll(() => t?.close());

const SAMPLE = join(ROOT, 'inventory');
const tmp = () => mkdtempSync(join(tmpdir(), 'racksmith-inv-'));
const counts = () =>
  query(t.db.url, `SELECT (SELECT count(*) FROM sites)::int AS sites, (SELECT count(*) FROM racks)::int AS racks, (SELECT count(*) FROM devices)::int AS devices,
    (SELECT count(*) FROM nics)::int AS nics, (SELECT count(*) FROM power_connections)::int AS power, (SELECT count(*) FROM pdus)::int AS pdus`);

function file(text: string): string {
  const dir = tmp();
  writeFileSync(join(dir, 'inv.yaml'), text);
  return dir;
}

describe('inventory import and export', () => {
  it('imports the shipped inventory of both sites, then finds nothing to change', async () => {
    const first = await importer.import(loadInventory(SAMPLE));
    expect(first.created).toBeGreaterThan(100);
    expect(first.updated).toBe(0);
    expect((await t.request({ url: '/api/v1/sites' })).json.map((s: { code: string }) => s.code)).toEqual(['baltic', 'elektrozavodskaya']);
    const again = await importer.import(loadInventory(SAMPLE));
    expect(again).toMatchObject({ created: 0, updated: 0, changes: [] });
    expect(again.unchanged).toBe(first.created);
  });

  it('round-trips: export, then import of the export changes nothing', async () => {
    const dir = tmp();
    writeInventory(dir, await importer.export());
    const report = await importer.import(loadInventory(dir));
    expect(report).toMatchObject({ created: 0, updated: 0, changes: [] });
  });

  it('updates only what changed, prints it, and a dry run changes nothing', async () => {
    const dir = tmp();
    cpSync(SAMPLE, dir, { recursive: true });
    const path = join(dir, 'sites', 'baltic.yaml');
    writeFileSync(path, readFileSync(path, 'utf8').replace('      - name: B03\n        location: Hall 1, row 0\n        heightU: 42', '      - name: B03\n        location: Hall 1, row 0\n        heightU: 47'));
    const dry = await importer.import(loadInventory(dir), { dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, created: 0, updated: 1, changes: ['~ rack baltic/B03: heightU 42 → 47'] });
    expect(await query(t.db.url, "SELECT height_u FROM racks WHERE name = 'B03'")).toEqual([{ height_u: 42 }]);
    const real = await importer.import(loadInventory(dir));
    expect(real.changes).toEqual(['~ rack baltic/B03: heightU 42 → 47']);
    expect(await query(t.db.url, "SELECT height_u FROM racks WHERE name = 'B03'")).toEqual([{ height_u: 47 }]);
    await importer.import(loadInventory(SAMPLE));
  });

  it('swaps two devices\' units and moves a MAC between devices in one import', async () => {
    const inv = await importer.export();
    const ez = inv.sites.find((s) => s.code === 'elektrozavodskaya')!;
    const [a, b] = ez.devices!.filter((d) => d.rack === 'E01' && d.role === 'rented-server');
    [a.position, b.position] = [b.position, a.position];
    const macA = a.nics![1].mac;
    a.nics = [a.nics![0]];
    b.nics = [...b.nics!, { name: 'eno3', mac: macA }];
    const dir = tmp();
    writeInventory(dir, inv);
    const report = await importer.import(loadInventory(dir));
    expect(report.updated).toBe(2);
    const rows = await query<{ name: string; position: number }>(t.db.url, 'SELECT name, position FROM devices WHERE name IN ($1, $2) ORDER BY name', [a.name, b.name]);
    expect(rows.find((r) => r.name === a.name)!.position).toBe(a.position);
    expect(await query(t.db.url, 'SELECT d.name FROM nics n JOIN devices d ON d.id = n.device_id WHERE n.mac = $1', [macA])).toEqual([{ name: b.name }]);
    await importer.import(loadInventory(SAMPLE));
  });

  it('names the file and line of a YAML error, and file, line and path of a schema error', () => {
    const broken = file('sites:\n  - code: x\n    racks: [\n');
    expect(() => loadInventory(broken)).toThrow(InventoryFileError);
    try {
      loadInventory(broken);
    } catch (err) {
      expect((err as InventoryFileError).problems[0]).toMatch(/^inv\.yaml:\d+: /);
    }
    const wrong = file('sites:\n  - code: lab\n    name: Lab\n    racks:\n      - name: L1\n        heightU: 99\n    colour: red\n');
    try {
      loadInventory(wrong);
      throw new Error('expected an error');
    } catch (err) {
      expect((err as InventoryFileError).problems).toEqual(
        expect.arrayContaining([expect.stringMatching(/^inv\.yaml:6: sites\[0\]\.racks\[0\]\.heightU: /), expect.stringMatching(/^inv\.yaml:\d: sites\[0\]: Unrecognized key: "colour"/)]),
      );
    }
  });

  it('changes nothing when any part of an import fails', async () => {
    const before = await counts();
    const overlap = file(`hardwareModels:
  - { vendor: Test, model: One, heightU: 1 }
sites:
  - code: lab
    name: Lab
    racks: [{ name: L1 }]
    devices:
      - { name: a, role: network, model: Test/One, rack: L1, position: 3, face: front, nics: [{ name: eth0, mac: '02:00:00:00:00:01' }] }
      - { name: b, role: network, model: Test/One, rack: L1, position: 3, face: front }
`);
    await expect(importer.import(loadInventory(overlap))).rejects.toMatchObject({ constraint: 'devices_rack_units_free' });
    const unknownRack = file(`sites:
  - code: lab
    name: Lab
    devices:
      - { name: a, role: network, model: Dell/PowerEdge R650, rack: L9, position: 3, face: front }
`);
    await expect(importer.import(loadInventory(unknownRack))).rejects.toThrow('rack L9 is not in site lab');
    expect(await counts()).toEqual(before);
    expect(await query(t.db.url, "SELECT count(*)::int AS n FROM sites WHERE code = 'lab'")).toEqual([{ n: 0 }]);
  });

  it('is a CLI command that explains itself', async () => {
    const env = { DATABASE_URL: t.db.url, RACKSMITH_SECRET_KEY: 'ab'.repeat(32) };
    const ok = await runCli(['inventory', 'import', SAMPLE], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^nothing to change: \d+ unchanged\n$/);
    const bad = await runCli(['inventory', 'import', file('sites: [{ code: lab }]\n')], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('inv.yaml:1: sites[0].name:');
    const out = tmp();
    const exported = await runCli(['inventory', 'export', out], env);
    expect(exported.stdout).toContain(join(out, 'sites', 'elektrozavodskaya.yaml'));
  });
});
