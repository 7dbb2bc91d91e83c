import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageCacheService } from '../../src/modules/images/image-cache.service';

/** The agent's image cache against a real HTTP server on 127.0.0.1. */
let dir: string;
let server: Server;
let base: string;
let hits = 0;
const body = Buffer.alloc(3 * 2 ** 20 + 17, 7);
const sha = createHash('sha256').update(body).digest('hex');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'racksmith-imgcache-'));
  server = createServer((req, res) => {
    hits++;
    if (req.url === '/img.raw.gz') return res.writeHead(200, { 'content-length': body.length }).end(body);
    if (req.url === '/short') return res.writeHead(200).end(body.subarray(0, 1000));
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('image cache', () => {
  const cache = new ImageCacheService();

  it('fetches a missing image once, checks it, and trusts its note until the file changes', async () => {
    const file = join(dir, 'site-a', 'deb.raw.gz');
    hits = 0;
    // Two installs at once share one download.
    const [a, b] = await Promise.all([cache.ensure({ name: 'deb', file, url: `${base}/img.raw.gz`, sha256: sha }), cache.ensure({ name: 'deb', file, url: `${base}/img.raw.gz`, sha256: sha })]);
    expect(a).toEqual({ how: 'fetched', bytes: body.length });
    expect(b).toBe(a);
    expect(hits).toBe(1);
    expect(readFileSync(file).equals(body)).toBe(true);
    expect(await cache.ensure({ name: 'deb', file, url: `${base}/img.raw.gz`, sha256: sha })).toEqual({ how: 'cached', bytes: body.length });
    // Touched: hashed again, found good, no download.
    utimesSync(file, new Date(), new Date(Date.now() + 5000));
    expect((await cache.ensure({ name: 'deb', file, sha256: sha })).how).toBe('verified');
    // Corrupted on disk: fetched again from the url; without a url, refused with both hashes.
    writeFileSync(file, 'not the image');
    await expect(cache.ensure({ name: 'deb', file, sha256: sha })).rejects.toThrow(/has SHA-256 [0-9a-f]{64}, not [0-9a-f]{64}, and the image has no url/);
    expect((await cache.ensure({ name: 'deb', file, url: `${base}/img.raw.gz`, sha256: sha })).how).toBe('fetched');
    expect(hits).toBe(2);
  });

  it('keeps nothing of a download whose hash is wrong, and names a missing file with no url', async () => {
    const file = join(dir, 'site-b', 'deb.raw.gz');
    await expect(cache.ensure({ name: 'deb', file, url: `${base}/short`, sha256: sha })).rejects.toThrow(/gave 1000 bytes with SHA-256 [0-9a-f]{64}, not [0-9a-f]{64}; nothing was kept/);
    await expect(cache.ensure({ name: 'deb', file, url: `${base}/gone`, sha256: sha })).rejects.toThrow('answered HTTP 404');
    await expect(cache.ensure({ name: 'deb', file, sha256: sha })).rejects.toThrow('is not on this agent and the image has no url');
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(join(dir, 'site-b'))).toEqual([]);
  });
});
