import { open, readFile, stat } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { bufferFile, TftpRefusal, type TftpClient, type TftpFile } from './tftp-server';

/** A file made for the asking client (an iPXE script for its MAC, say), or null when not ours. */
export type GeneratedFile = (name: string, client: TftpClient) => Promise<Buffer | null>;

const CACHE_FILE_MAX = 8 * 1024 * 1024;
const CACHE_TOTAL_MAX = 64 * 1024 * 1024;

/**
 * The files a TFTP client may read: generated ones first, then those under the root directory.
 * A name is relative to the root (a leading `/` is dropped); `..` segments and backslashes are
 * refused as access violations, so nothing outside the root is reachable by name. Symbolic links
 * inside the root are followed (Debian's `ipxe` links `ipxe.efi` to `/boot`), as tftpd-hpa does.
 * Small files (boot loaders) are kept in memory while unchanged: a boot storm reads them once.
 */
export class TftpFiles {
  private readonly root: string;
  private readonly cache = new Map<string, { mtimeMs: number; size: number; data: Buffer }>();
  private cached = 0;

  constructor(
    root: string,
    private readonly generated?: GeneratedFile,
  ) {
    this.root = resolve(root);
  }

  /** The name relative to the root, or a TftpRefusal('access'). */
  static relative(name: string): string {
    if (name.includes('\\')) throw new TftpRefusal('access', 'backslash in file name');
    const parts = name.split('/').filter((p) => p && p !== '.');
    if (parts.some((p) => p === '..')) throw new TftpRefusal('access', '".." in file name');
    if (!parts.length) throw new TftpRefusal('not-found', 'empty file name');
    return parts.join('/');
  }

  async open(name: string, client: TftpClient): Promise<TftpFile> {
    const rel = TftpFiles.relative(name);
    const made = this.generated ? await this.generated(rel, client) : null;
    if (made) return bufferFile(made);
    const path = resolve(this.root, rel);
    if (path !== this.root && !path.startsWith(this.root + sep)) throw new TftpRefusal('access', 'outside the root');
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      throw refusal(err);
    }
    if (!st.isFile()) throw new TftpRefusal('not-found', 'not a file');
    if (st.size <= CACHE_FILE_MAX) return bufferFile(await this.small(path, st.mtimeMs, st.size));
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw refusal(err);
    }
    const handle = fh;
    return {
      size: st.size,
      fd: handle.fd,
      read: async (offset, length) => {
        const buf = Buffer.allocUnsafe(length);
        const { bytesRead } = await handle.read(buf, 0, length, offset);
        return buf.subarray(0, bytesRead);
      },
      close: () => handle.close(),
    };
  }

  private async small(path: string, mtimeMs: number, size: number): Promise<Buffer> {
    const hit = this.cache.get(path);
    if (hit && hit.mtimeMs === mtimeMs && hit.size === size) {
      // Most recently used last.
      this.cache.delete(path);
      this.cache.set(path, hit);
      return hit.data;
    }
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      throw refusal(err);
    }
    if (hit) this.cached -= hit.size;
    this.cache.set(path, { mtimeMs, size: data.length, data });
    this.cached += data.length;
    for (const [key, v] of this.cache) {
      if (this.cached <= CACHE_TOTAL_MAX) break;
      this.cache.delete(key);
      this.cached -= v.size;
    }
    return data;
  }
}

function refusal(err: unknown): TftpRefusal {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM' ? new TftpRefusal('access', 'permission denied') : new TftpRefusal('not-found', code ?? 'cannot open');
}
