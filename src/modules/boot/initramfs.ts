import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * Small Linux initramfs images (busybox + kernel modules + an init script), written in Node: the
 * "newc" cpio format, gzip'd, as the kernel unpacks it. Used for racksmith's disk-wipe image (and
 * the lab's test installer); no cpio or gzip process needed.
 */

export interface InitramfsFile {
  /** Path inside the image, without a leading slash. */
  path: string;
  content: Buffer | string;
  mode?: number;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

function header(name: string, mode: number, size: number, ino: number): Buffer {
  const nameBytes = Buffer.byteLength(name) + 1;
  const fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, nameBytes, 0].map((n) => n.toString(16).padStart(8, '0')).join('');
  const head = Buffer.from(`070701${fields}${name}\0`, 'latin1');
  return pad(head);
}

const pad = (b: Buffer) => (b.length % 4 ? Buffer.concat([b, Buffer.alloc(4 - (b.length % 4))]) : b);

/** A gzip'd newc cpio archive of `files` (directories above them are added), plus `symlinks`. */
export function initramfs(files: InitramfsFile[], symlinks: Record<string, string> = {}): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const dirs = new Set<string>();
  const addDir = (p: string) => {
    const segs = p.split('/');
    for (let i = 1; i < segs.length; i++) {
      const d = segs.slice(0, i).join('/');
      if (dirs.has(d)) continue;
      dirs.add(d);
      parts.push(header(d, S_IFDIR | 0o755, 0, ino++));
    }
  };
  for (const d of ['dev', 'proc', 'sys', 'tmp', 'bin']) addDir(`${d}/x`);
  for (const f of files) {
    addDir(f.path);
    const data = Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content);
    parts.push(header(f.path, S_IFREG | (f.mode ?? 0o644), data.length, ino++), pad(data));
  }
  for (const [path, target] of Object.entries(symlinks)) {
    addDir(path);
    const data = Buffer.from(target);
    parts.push(header(path, S_IFLNK | 0o777, data.length, ino++), pad(data));
  }
  parts.push(header('TRAILER!!!', 0, 0, 0));
  return gzipSync(Buffer.concat(parts), { level: 6 });
}

/**
 * Kernel modules by name with everything they depend on, in load order (dependencies first), from
 * the kernel's modules.dep. Names the kernel does not have (built in, or another kernel) are left out.
 */
export function modulesWithDependencies(moduleRoot: string, names: readonly string[]): { name: string; file: string }[] {
  const deps = new Map<string, string[]>();
  for (const line of readFileSync(join(moduleRoot, 'modules.dep'), 'utf8').split('\n')) {
    const [file, rest] = line.split(':');
    if (file && rest !== undefined) deps.set(file.trim(), rest.trim() ? rest.trim().split(/\s+/) : []);
  }
  const byName = new Map<string, string>();
  for (const file of deps.keys()) byName.set(moduleName(file), file);
  const out: { name: string; file: string }[] = [];
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    // modules.dep lists the dependencies the last-loaded first: load them in reverse.
    for (const d of [...(deps.get(file) ?? [])].reverse()) visit(d);
    if (/\.ko$/.test(file) && existsSync(join(moduleRoot, file))) out.push({ name: moduleName(file), file: join(moduleRoot, file) });
  };
  for (const n of names) {
    const file = byName.get(n.replace(/-/g, '_'));
    if (file) visit(file);
  }
  return out;
}

const moduleName = (file: string) => file.split('/').pop()!.replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_');
