import { Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface CachedImage {
  name: string;
  file: string;
  url?: string | null;
  sha256: string;
}

/** What `ensure` did: the file was known good, hashed and found good, or fetched. */
export type CacheOutcome = { how: 'cached' | 'verified' | 'fetched'; bytes: number };

/**
 * The images a site's agent serves to its deploy ramdisks, kept at each image's `file`: fetched
 * from its `url` when missing or wrong, and checked by SHA-256 before it is used. A checked file
 * gets a `<file>.sha256` note (hash, size, mtime), so the next install does not hash it again
 * unless the file changed. A download goes to a `.part` file and is renamed only once its hash
 * is right, so a half-fetched or corrupt image is never served.
 */
@Injectable()
export class ImageCacheService {
  /** Fetches in flight in this process, by file: two installs of one image share one download. */
  private readonly inFlight = new Map<string, Promise<CacheOutcome>>();

  ensure(image: CachedImage, signal?: AbortSignal): Promise<CacheOutcome> {
    const running = this.inFlight.get(image.file);
    if (running) return running;
    const p = this.ensureNow(image, signal).finally(() => this.inFlight.delete(image.file));
    this.inFlight.set(image.file, p);
    return p;
  }

  private async ensureNow(image: CachedImage, signal?: AbortSignal): Promise<CacheOutcome> {
    const have = await stat(image.file).catch(() => null);
    if (have) {
      const note = `${image.sha256} ${have.size} ${Math.trunc(have.mtimeMs)}`;
      if ((await readFile(`${image.file}.sha256`, 'utf8').catch(() => '')).trim() === note) return { how: 'cached', bytes: have.size };
      const sum = await sha256Of(image.file, signal);
      if (sum === image.sha256) {
        await writeFile(`${image.file}.sha256`, `${note}\n`);
        return { how: 'verified', bytes: have.size };
      }
      if (!image.url) throw new Error(`image ${image.name}: ${image.file} has SHA-256 ${sum}, not ${image.sha256}, and the image has no url to fetch it again from`);
    } else if (!image.url) {
      throw new Error(`image ${image.name}: ${image.file} is not on this agent and the image has no url to fetch it from`);
    }
    return this.fetch(image as CachedImage & { url: string }, signal);
  }

  private async fetch(image: CachedImage & { url: string }, signal?: AbortSignal): Promise<CacheOutcome> {
    await mkdir(dirname(image.file), { recursive: true });
    const part = `${image.file}.part-${process.pid}`;
    try {
      const res = await fetch(image.url, { signal });
      if (!res.ok || !res.body) throw new Error(`image ${image.name}: ${image.url} answered HTTP ${res.status}`);
      const hash = createHash('sha256');
      let bytes = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          bytes += chunk.length;
          done(null, chunk);
        },
      });
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), tap, createWriteStream(part), { signal });
      const sum = hash.digest('hex');
      if (sum !== image.sha256) throw new Error(`image ${image.name}: ${image.url} gave ${bytes} bytes with SHA-256 ${sum}, not ${image.sha256}; nothing was kept`);
      await rename(part, image.file);
      const got = await stat(image.file);
      await writeFile(`${image.file}.sha256`, `${image.sha256} ${got.size} ${Math.trunc(got.mtimeMs)}\n`);
      return { how: 'fetched', bytes };
    } finally {
      await rm(part, { force: true });
    }
  }
}

async function sha256Of(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
