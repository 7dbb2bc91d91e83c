import { isAbsolute, join } from 'node:path';
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { loadInventory } from '../modules/inventory/inventory-files';
import type { ImportReport, InventoryImportService } from '../modules/inventory/inventory-import.service';

/** The racksmith folder (where package.json and the shipped inventory/ are). */
export const PACKAGE_ROOT = join(__dirname, '..', '..');

export function resolveSeed(seed: string): string | undefined {
  if (!seed) return undefined;
  return isAbsolute(seed) ? seed : join(PACKAGE_ROOT, seed);
}

export function formatReport(r: ImportReport, max = 500): string {
  const lines = r.changes.slice(0, max);
  if (r.changes.length > max) lines.push(`… and ${r.changes.length - max} more changes`);
  const verb = r.dryRun ? 'would change' : 'changed';
  const summary =
    r.created || r.updated
      ? `${r.dryRun ? 'dry run: ' : ''}${r.created} created, ${r.updated} updated, ${r.unchanged} unchanged (${verb})`
      : `nothing to change: ${r.unchanged} unchanged`;
  if (r.notInFiles.length) lines.push(`${r.notInFiles.length} in the database but not in the files (kept): ${r.notInFiles.slice(0, 10).join(', ')}${r.notInFiles.length > 10 ? ', …' : ''}`);
  return [...lines, summary].join('\n') + '\n';
}

/**
 * On a database without sites, import the seed inventory (what `npm start` runs on first start).
 * Does nothing when sites exist, when seeding is off, or when the folder is missing.
 */
export async function seedInventory(importer: InventoryImportService, hasSites: () => Promise<boolean>, seed: string, log: Logger): Promise<ImportReport | undefined> {
  const dir = resolveSeed(seed);
  if (!dir || !existsSync(dir) || (await hasSites())) return undefined;
  const report = await importer.import(loadInventory(dir));
  log.info({ dir, created: report.created }, 'empty database: imported the seed inventory');
  return report;
}
