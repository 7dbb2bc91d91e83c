import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { InstallService } from '../../src/modules/servers/install.service';
import { OS_TEMPLATES } from '../../src/modules/servers/install.schemas';
import { startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';

/**
 * Issue 21 §3: boot services off means no network boot is started; boot routes are the boot
 * listener's alone; a rendered boot script or template never holds an empty or undefined host.
 */
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl customer@example';
const ROOT = join(__dirname, '..', '..');

async function labServer(t: TestApp, site: string, model: string, name: string, mac: string, state = 'available'): Promise<string> {
  const dev = await t.request({ method: 'POST', url: '/api/v1/devices', body: { site, name, role: 'rented-server', modelId: model, bmc: { address: '127.0.0.2', username: 'admin', password: 'secret' }, nics: [{ name: 'eth0', mac, pxe: true }] } });
  expect(dev.status).toBe(201);
  if (state !== 'new') expect((await t.request({ method: 'POST', url: `/api/v1/servers/${dev.json.id}/transition`, body: { to: 'available' } })).status).toBeLessThan(300);
  return dev.json.id;
}

async function siteAndModel(t: TestApp, site: string): Promise<string> {
  expect((await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: site, name: site } })).status).toBe(201);
  return (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: `M-${site}`, heightU: 1, bmcDriver: 'fake' } })).json.id;
}

describe('boot services off at a site', () => {
  let t: TestApp;
  let model: string;
  beforeAll(async () => {
    t = await startTestApp({ RACKSMITH_BOOT_ADDRESS: '' });
    model = await siteAndModel(t, 'dark');
  });
  afterAll(() => t?.close());

  it('refuses an install and a wipe with 409 boot_services_off naming the site, before any job or power action', async () => {
    const id = await labServer(t, 'dark', model, 'dark-1', '52:54:00:d0:00:01');
    const install = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: { os: 'debian-12', hostname: 'dark1.example.com', sshKeys: [KEY] } });
    expect(install.status).toBe(409);
    expect(install.json.error).toMatchObject({ code: 'boot_services_off', details: { site: 'dark' } });
    expect(install.json.error.message).toContain('site dark');
    const wipe = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/wipe`, body: { mode: 'quick' } });
    expect(wipe.status).toBe(409);
    expect(wipe.json.error.code).toBe('boot_services_off');
    const bulk = await t.request({ method: 'POST', url: '/api/v1/servers/install', body: { os: 'debian-12', sshKeys: [KEY], servers: [{ id, hostname: 'dark1.example.com' }] } });
    expect(bulk.status).toBeLessThan(300);
    expect(bulk.json.refused).toEqual([{ serverId: id, error: expect.objectContaining({ code: 'boot_services_off' }) }]);
    expect(await query(t.db.url, 'SELECT id FROM jobs WHERE server_id = $1', [id])).toEqual([]);
    expect((await t.request({ url: `/api/v1/servers/${id}` })).json.state).toBe('available');
    // Nothing listens for machines, and the API does not serve their routes.
    expect((await t.request({ url: '/api/v1/whoami' })).status).toBe(200);
    expect((await t.request({ url: '/boot/ipxe/52:54:00:d0:00:01', token: '' })).status).toBe(404);
    expect((await t.request({ url: '/health', token: '' })).json.checks.bootHttp).toEqual({ status: 'off', detail: 'no boot address configured (RACKSMITH_BOOT_ADDRESS)' });
  });
});

describe('boot services on', () => {
  let t: TestApp;
  let model: string;
  let dir: string;
  let base: string;
  beforeAll(async () => {
    // The shipped manifest's command lines, with stand-in kernels for every entry.
    dir = mkdtempSync(join(tmpdir(), 'racksmith-bootsvc-'));
    const manifest = parseYaml(readFileSync(join(ROOT, 'pxe', 'boot-assets.yaml'), 'utf8')) as Record<string, Record<string, unknown>>;
    for (const [os, entry] of Object.entries(manifest)) {
      for (const which of ['kernel', 'initrd'] as const) {
        const file = join(dir, `${os}-${which}`);
        writeFileSync(file, `${os} ${which}`);
        entry[which] = file;
      }
    }
    writeFileSync(join(dir, 'assets.yaml'), toYaml(manifest));
    writeFileSync(join(dir, 'img.raw.gz'), 'not really an image');
    t = await startTestApp({ RACKSMITH_BOOT_ASSETS: join(dir, 'assets.yaml') });
    model = await siteAndModel(t, 'lit');
    const at = t.app.get((await import('../../src/modules/boot/boot-http.service')).BootHttp).listening!;
    base = `http://${at.address}:${at.port}`;
  });
  afterAll(async () => {
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /boot/ on the boot listener only, and the boot listener serves nothing of the API but the callbacks', async () => {
    await labServer(t, 'lit', model, 'lit-0', '52:54:00:e0:00:00');
    expect((await t.boot('/boot/ipxe/52:54:00:e0:00:00')).status).toBe(200);
    const onApi = await t.request({ url: '/boot/ipxe/52:54:00:e0:00:00', token: '' });
    expect(onApi.status).toBe(404);
    expect(onApi.json.error.message).toContain('boot listener');
    expect((await t.request({ url: '/boot/assets/debian-12/kernel', token: '' })).status).toBe(404);
    const whoami = await t.boot('/api/v1/whoami', { headers: { authorization: 'Bearer test-bootstrap-token-0123456789abcdef' } });
    expect(whoami.status).toBe(404);
    expect(whoami.json.error.message).toContain('boot listener serves /boot/ and install callbacks only');
    expect((await t.boot('/health')).status).toBe(404);
    expect((await t.boot('/docs')).status).toBe(404);
    // Callbacks reach their route there (a wrong job is a 404 of the route, not of the listener).
    const cb = await t.boot('/api/v1/install-callbacks/00000000-0000-4000-8000-000000000000', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'x'.repeat(32), status: 'progress' }) });
    expect(cb.status).toBe(404);
    expect(cb.json.error.code).toBe('not_found');
    expect(cb.json.error.message).not.toContain('boot listener');
  });

  /** Every URL of racksmith's in a rendered text points at the boot listener; nothing is undefined or empty. */
  function checkRendered(what: string, text: string): void {
    expect({ what, undefined: /\bundefined\b|\bNaN\b|\[object Object\]|\{\{/.test(text) }).toEqual({ what, undefined: false });
    expect({ what, emptyHost: /https?:\/\/(?:[:/]|\s|$|null\b)/m.test(text) }).toEqual({ what, emptyHost: false });
    const ours = [...text.matchAll(/https?:\/\/[^\s'"]+/g)].map((m) => m[0]).filter((u) => /\/boot\/|install-callbacks/.test(u));
    for (const u of ours) expect({ what, url: u, ok: u.startsWith(`${base}/`) }).toEqual({ what, url: u, ok: true });
  }

  it('renders every boot script and install template in every state with the boot listener\'s host, never an empty or undefined one', async () => {
    let n = 0;
    const mac = () => `52:54:00:e1:00:${(++n).toString(16).padStart(2, '0')}`;
    const scripts: string[] = [];
    const render = async (what: string, path: string, status = 200) => {
      const res = await t.boot(path);
      expect({ what, status: res.status }).toEqual({ what, status });
      checkRendered(what, res.text);
      scripts.push(what);
      return res.text;
    };
    const deploying = async (id: string, jobId: string) => {
      for (const to of ['reserved', 'deploying']) await t.request({ method: 'POST', url: `/api/v1/servers/${id}/transition`, body: { to } });
      return t.app.get(InstallService).callbackToken(jobId);
    };

    // Installs of every OS template, with DHCP and with a static address.
    for (const os of OS_TEMPLATES) {
      for (const network of [{ mode: 'dhcp' }, { mode: 'static', address: '192.0.2.10/24', gateway: '192.0.2.1', dns: ['192.0.2.53'] }]) {
        const m = mac();
        const id = await labServer(t, 'lit', model, `lit-${n}`, m);
        const res = await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: { os, hostname: `lit${n}.example.com`, sshKeys: [KEY], rootPassword: 'correct horse battery', network, diskLayout: network.mode === 'static' ? 'raid1' : 'single' } });
        expect({ os, status: res.status }).toEqual({ os, status: 202 });
        const token = await deploying(id, res.json.id);
        const script = await render(`${os} ${network.mode} iPXE`, `/boot/ipxe/${m}`);
        expect(script).toContain(`${base}/boot/assets/${os}/kernel`);
        for (const file of readdirSync(join(ROOT, 'templates', os))) await render(`${os} ${network.mode} ${file}`, `/boot/templates/${res.json.id}/${token}/${file}`);
      }
    }

    // An image deploy: the deploy ramdisk's script and its configuration.
    expect((await t.request({ method: 'PUT', url: '/api/v1/images/lit-img', body: { os: 'debian-12', file: join(dir, 'img.raw.gz'), sha256: 'a'.repeat(64), diskBytes: 1e9 } })).status).toBe(201);
    const im = mac();
    const imgServer = await labServer(t, 'lit', model, `lit-${n}`, im);
    const img = await t.request({ method: 'POST', url: `/api/v1/servers/${imgServer}/install`, body: { os: 'debian-12', image: 'lit-img', hostname: 'img.example.com', sshKeys: [KEY] } });
    expect(img.status).toBe(202);
    const imgToken = await deploying(imgServer, img.json.id);
    expect(await render('image iPXE', `/boot/ipxe/${im}`)).toContain(`racksmith.image=${base}/boot/images/lit-img`);
    await render('image deploy.sh', `/boot/templates/${img.json.id}/${imgToken}/deploy.sh`);

    // A wipe.
    const wm = mac();
    const wiped = await labServer(t, 'lit', model, `lit-${n}`, wm);
    const wipe = await t.request({ method: 'POST', url: `/api/v1/servers/${wiped}/wipe`, body: { mode: 'quick' } });
    expect(wipe.status).toBe(202);
    await t.request({ method: 'POST', url: `/api/v1/servers/${wiped}/transition`, body: { to: 'wiping' } });
    expect(await render('wipe iPXE', `/boot/ipxe/${wm}`)).toContain('racksmith.wipe=quick');

    // Machines with nothing to install: sent to their disk; an unknown MAC: told so.
    await render('unknown MAC iPXE', '/boot/ipxe/52:54:00:ff:ee:01', 404);
    const idle = mac();
    await labServer(t, 'lit', model, `lit-${n}`, idle);
    expect(await render('idle iPXE', `/boot/ipxe/${idle}`)).toContain('exit 1');
    const inMaint = mac();
    const maint = await labServer(t, 'lit', model, `lit-${n}`, inMaint);
    expect((await t.request({ method: 'PUT', url: `/api/v1/servers/${maint}/maintenance`, body: { enabled: true, reason: 'test' } })).status).toBe(200);
    await render('maintenance iPXE', `/boot/ipxe/${inMaint}`);
    // Two installs of each OS (a script and each template file), the image (2), wipe, unknown, idle, maintenance.
    const files = OS_TEMPLATES.reduce((a, os) => a + 1 + readdirSync(join(ROOT, 'templates', os)).length, 0);
    expect(scripts.length).toBe(2 * files + 6);
  });

  it('takes a job\'s callback token for that job only, and no longer once the job ends', async () => {
    const m = '52:54:00:e2:00:01';
    const id = await labServer(t, 'lit', model, 'lit-end', m);
    const job = (await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: { os: 'debian-12', hostname: 'end.example.com', sshKeys: [KEY] } })).json;
    const token = await t.app.get(InstallService).callbackToken(job.id);
    for (const to of ['reserved', 'deploying']) await t.request({ method: 'POST', url: `/api/v1/servers/${id}/transition`, body: { to } });
    expect((await t.boot(`/boot/templates/${job.id}/${token}/preseed.cfg`)).status).toBe(200);
    const post = (status: string) => t.boot(`/api/v1/install-callbacks/${job.id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, status }) });
    // Another install's token does not open this one.
    const other = await labServer(t, 'lit', model, 'lit-other', '52:54:00:e2:00:02');
    const otherJob = (await t.request({ method: 'POST', url: `/api/v1/servers/${other}/install`, body: { os: 'debian-12', hostname: 'other.example.com', sshKeys: [KEY] } })).json;
    const otherToken = await t.app.get(InstallService).callbackToken(otherJob.id);
    expect((await t.boot(`/boot/templates/${job.id}/${otherToken}/preseed.cfg`)).status).toBe(401);
    expect((await t.boot(`/api/v1/install-callbacks/${job.id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: otherToken, status: 'done' }) })).status).toBe(401);
    expect((await post('done')).status).toBeLessThan(300);
    // The outcome is reported once: the installer's files and a second outcome are refused.
    const used = await t.boot(`/boot/templates/${job.id}/${token}/preseed.cfg`);
    expect([used.status, used.text]).toEqual([409, expect.stringContaining('callback_used')]);
    // The job ends (as the worker ends it): nothing takes the token any more.
    await query(t.db.url, "UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = $1", [job.id]);
    const after = await t.boot(`/boot/templates/${job.id}/${token}/preseed.cfg`);
    expect(after.status).toBe(409);
    expect(after.text).toContain('job_finished');
    const cb = await post('booted');
    expect([cb.status, cb.text]).toEqual([409, expect.stringContaining('job_finished')]);
    expect(cb.status).toBe(409);
  });
});
