import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inventoryJsonSchema } from '../../src/modules/inventory/inventory-file.schema';
import { loadInventory } from '../../src/modules/inventory/inventory-files';

const ROOT = join(__dirname, '..', '..');

describe('the shipped inventory', () => {
  it('has a JSON Schema generated from the code (npm run inventory:schema)', () => {
    expect(JSON.parse(readFileSync(join(ROOT, 'inventory', 'schema.json'), 'utf8'))).toEqual(inventoryJsonSchema());
  });

  it('holds both data centers and passes the schema', () => {
    const inv = loadInventory(join(ROOT, 'inventory'));
    expect(inv.sites.map((s) => s.code)).toEqual(['baltic', 'elektrozavodskaya']);
    for (const s of inv.sites) {
      expect(s.racks!.length).toBeGreaterThan(0);
      expect(s.devices!.some((d) => d.role === 'hypervisor')).toBe(true);
      expect(s.devices!.some((d) => d.role === 'pdu')).toBe(true);
    }
    expect(inv.models.length).toBeGreaterThan(3);
  });
});
