import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { LineCounter, parseDocument, stringify, type Document } from 'yaml';
import { inventoryFile, type InventoryFile, type SiteFile } from './inventory-file.schema';

/** Every problem found in the inventory files, each as "file:line: path: message". */
export class InventoryFileError extends Error {
  constructor(readonly problems: string[]) {
    super(`the inventory has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'InventoryFileError';
  }
}

export interface LoadedInventory {
  models: NonNullable<InventoryFile['hardwareModels']>;
  sites: SiteFile[];
  files: string[];
}

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(entry)) out.push(path);
  }
  return out;
}

/** The line of the deepest node of `path` that exists in the document. */
function lineOf(doc: Document, counter: LineCounter, path: (string | number)[]): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node?.range) return counter.linePos(node.range[0]).line;
  }
  return undefined;
}

function showPath(path: PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('') || '(top)';
}

/**
 * Read and check every *.yaml below `dir`. A YAML error names the file and line; a schema error
 * the file, line and path. Duplicate sites or models across files are errors too.
 */
export function loadInventory(dir: string): LoadedInventory {
  let files: string[];
  try {
    files = statSync(dir).isDirectory() ? yamlFiles(dir) : [dir];
  } catch (err) {
    throw new InventoryFileError([`${dir}: ${(err as Error).message}`]);
  }
  const problems: string[] = [];
  const models: LoadedInventory['models'] = [];
  const sites: SiteFile[] = [];
  const seenSites = new Map<string, string>();
  const seenModels = new Map<string, string>();
  for (const file of files) {
    const shown = statSync(dir).isDirectory() ? relative(dir, file) : file;
    const counter = new LineCounter();
    const doc = parseDocument(readFileSync(file, 'utf8'), { lineCounter: counter });
    if (doc.errors.length) {
      for (const e of doc.errors) problems.push(`${shown}:${e.linePos?.[0].line ?? '?'}: ${e.message.split('\n')[0]}`);
      continue;
    }
    const parsed = inventoryFile.safeParse(doc.toJS() ?? {});
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        problems.push(`${shown}:${lineOf(doc, counter, issue.path as (string | number)[]) ?? '?'}: ${showPath(issue.path)}: ${issue.message}`);
      }
      continue;
    }
    for (const m of parsed.data.hardwareModels ?? []) {
      const key = `${m.vendor}/${m.model}`;
      if (seenModels.has(key)) problems.push(`${shown}: hardware model ${key} is also in ${seenModels.get(key)}`);
      seenModels.set(key, shown);
      models.push(m);
    }
    for (const s of parsed.data.sites ?? []) {
      if (seenSites.has(s.code)) problems.push(`${shown}: site ${s.code} is also in ${seenSites.get(s.code)}`);
      seenSites.set(s.code, shown);
      sites.push(s);
    }
  }
  if (problems.length) throw new InventoryFileError(problems);
  return { models, sites, files };
}

/** Write the inventory back as files: hardware-models.yaml and sites/<code>.yaml. */
export function writeInventory(dir: string, inv: { models: LoadedInventory['models']; sites: SiteFile[] }): string[] {
  const header = '# racksmith inventory (written by `racksmith inventory export`); schema: inventory/schema.json\n';
  mkdirSync(join(dir, 'sites'), { recursive: true });
  const written: string[] = [];
  const put = (path: string, value: unknown) => {
    writeFileSync(path, header + stringify(value, { lineWidth: 0 }));
    written.push(path);
  };
  put(join(dir, 'hardware-models.yaml'), { hardwareModels: inv.models });
  for (const s of inv.sites) put(join(dir, 'sites', `${s.code}.yaml`), { sites: [s] });
  return written;
}
