/// <reference lib="dom" />
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { BOOTSTRAP, startTestApp, type TestApp } from '../support/app';
import { requirePeer } from '../support/peers';
import { ROOT } from '../support/cli';
import { ROLE_COLOURS } from '../../src/modules/inventory/elevation.svg';

/** The elevation SVG as a person sees it: rendered by Debian's Chromium, looked at pixel by pixel. */
let t: TestApp;
let browser: Browser;
let base: string;
beforeAll(async () => {
  const executablePath = requirePeer('/usr/bin/chromium', 'chromium');
  t = await startTestApp();
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = t.app.getHttpServer().address() as { port: number };
  base = `http://127.0.0.1:${addr.port}`;
  browser = await chromium.launch({
    executablePath,
    // Playwright runs it headless with a fresh profile of its own.
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await t?.close();
});

async function api(method: string, url: string, body: unknown) {
  const res = await t.request({ method, url: `/api/v1${url}`, body });
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.text}`);
  return res.json;
}

it('renders the rack elevation: devices where they sit, in their role colours', async () => {
  await api('POST', '/sites', { code: 'shot', name: 'Screenshot site' });
  const rack = await api('POST', '/racks', { site: 'shot', name: 'S01', heightU: 16 });
  const m1 = await api('POST', '/hardware-models', { vendor: 'Dell', model: 'R650', heightU: 1 });
  const m2 = await api('POST', '/hardware-models', { vendor: 'Dell', model: 'R750', heightU: 2 });
  const sw = await api('POST', '/hardware-models', { vendor: 'Juniper', model: 'EX4300', heightU: 1, fullDepth: false });
  await api('POST', '/devices', { site: 'shot', name: 'rs-001', role: 'rented-server', modelId: m1.id, placement: { rack: rack.id, position: 2, face: 'front' } });
  await api('POST', '/devices', { site: 'shot', name: 'hv-01', role: 'hypervisor', modelId: m2.id, placement: { rack: rack.id, position: 5, face: 'front' } });
  await api('POST', '/devices', { site: 'shot', name: 'sw-01', role: 'network', modelId: sw.id, placement: { rack: rack.id, position: 16, face: 'rear' } });

  const page = await browser.newPage({ viewport: { width: 640, height: 480 } });
  await page.setExtraHTTPHeaders({ authorization: `Bearer ${BOOTSTRAP}` });
  const res = await page.goto(`${base}/api/v1/racks/${rack.id}/elevation.svg`);
  expect(res!.status()).toBe(200);
  // A broken SVG shows Chromium's XML error page instead of the drawing.
  expect(await page.locator('parsererror').count()).toBe(0);
  const boxes = await page.locator('g.device rect').evaluateAll((els) => els.map((e) => {
    const b = e.getBoundingClientRect();
    return { role: e.parentElement!.getAttribute('data-role'), x: b.x, y: b.y, w: b.width, h: b.height };
  }));
  // rs-001 and hv-01 are full depth (front and rear), sw-01 only on the rear.
  expect(boxes.map((b) => b.role).sort()).toEqual(['hypervisor', 'hypervisor', 'network', 'rented-server', 'rented-server']);
  const hv = boxes.filter((b) => b.role === 'hypervisor');
  const rs = boxes.filter((b) => b.role === 'rented-server');
  expect(hv[0].h).toBeCloseTo(rs[0].h * 2 + 2, 0); // 2U against 1U
  expect(hv[0].y).toBeLessThan(rs[0].y); // higher units are drawn higher

  const png = await page.screenshot();
  const artifacts = join(ROOT, 'test', 'artifacts');
  mkdirSync(artifacts, { recursive: true });
  writeFileSync(join(artifacts, 'elevation.png'), png);

  // Read the pixels back: the centre of each device shows its role colour.
  const viewer = await browser.newPage();
  const front = boxes.filter((x) => x.x < 300);
  expect(front.map((b) => b.role).sort()).toEqual(['hypervisor', 'rented-server']);
  for (const b of front) {
    const rgb = await viewer.evaluate(
      async ({ data, x, y }) => {
        const img = new Image();
        img.src = `data:image/png;base64,${data}`;
        await img.decode();
        const c = document.createElement('canvas');
        c.width = img.width;
        c.height = img.height;
        const ctx = c.getContext('2d')!;
        ctx.drawImage(img, 0, 0);
        return Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3));
      },
      { data: png.toString('base64'), x: Math.round(b.x + b.w * 0.5), y: Math.round(b.y + b.h / 2) },
    );
    const hex = ROLE_COLOURS[b.role!];
    const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    rgb.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThanOrEqual(3));
  }
  await viewer.close();
  await page.close();
}, 60_000);
