import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSocket, type Socket } from 'node:dgram';
import { encodeDhcp, MSG, opt, OPT, parseDhcp, type DhcpPacket } from '../../src/modules/boot/dhcp/dhcp-packet';
import { DhcpService } from '../../src/modules/boot/dhcp.service';
import { TftpService } from '../../src/modules/boot/tftp.service';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { InstallService } from '../../src/modules/servers/install.service';
import { startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';
import { freeUdpPort } from '../support/ipmi-sim';
import { until } from '../support/wait';

jest.setTimeout(60_000);

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl engineer@example';
const PXE: [number, Buffer][] = [[OPT.VENDOR_CLASS, opt.text('PXEClient:Arch:00000:UNDI:002001')], [OPT.CLIENT_ARCH, Buffer.from([0, 0])]];

let t: TestApp;
let client: Socket;
const got: DhcpPacket[] = [];
let dhcpPort: number;
let tftpPort: number;
let siteModel: string;
let dir: string;
const kernel = randomBytes(300_000);

beforeAll(async () => {
  client = createSocket('udp4');
  client.on('message', (m) => got.push(parseDhcp(m)!));
  await new Promise<void>((r) => client.bind(0, '0.0.0.0', () => r()));
  dhcpPort = await freeUdpPort();
  tftpPort = await freeUdpPort();
  // A manifest of our own: debian-12's "installer" is a file of random bytes here.
  dir = mkdtempSync(join(tmpdir(), 'racksmith-boot-'));
  writeFileSync(join(dir, 'vmlinuz'), kernel);
  writeFileSync(join(dir, 'initrd.gz'), 'initrd');
  writeFileSync(join(dir, 'assets.yaml'), `debian-12:\n  kernel: ${join(dir, 'vmlinuz')}\n  initrd: ${join(dir, 'initrd.gz')}\n  cmdline: auto=true url={{templateBase}}preseed.cfg hostname={{hostname}} domain={{domain}}\nrocky-9:\n  package: none-here\n  kernel: /nonexistent/vmlinuz\n  initrd: /nonexistent/initrd.img\n`);
  t = await startTestApp({
    RACKSMITH_POWER_SYNC_INTERVAL: '0',
    RACKSMITH_BOOT_ADDRESS: '127.0.0.1',
    RACKSMITH_DHCP_MODE: 'authoritative',
    RACKSMITH_DHCP_BIND: '127.0.0.1',
    RACKSMITH_DHCP_PORT: String(dhcpPort),
    RACKSMITH_DHCP_BROADCAST: '127.0.0.1',
    RACKSMITH_DHCP_CLIENT_PORT: String(client.address().port),
    RACKSMITH_BOOT_HTTP_URL: 'http://127.0.0.1:8080',
    RACKSMITH_BOOT_ASSETS: join(dir, 'assets.yaml'),
    RACKSMITH_BOOT_DISCOVERY: 'true',
    RACKSMITH_TFTP_PORT: String(tftpPort),
  });
  await t.app.get(TftpService).start();
  await t.app.get(DhcpService).start();
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
  siteModel = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: '1U', heightU: 1, bmcDriver: 'fake' } })).json.id;
});
afterAll(async () => {
  client?.close();
  await t?.close();
  rmSync(dir, { recursive: true, force: true });
});

function send(type: number, mac: string, options: [number, Buffer][] = []): number {
  const xid = randomBytes(4).readUInt32BE();
  client.send(encodeDhcp({ op: 1, type: type as never, xid, flags: 0, mac, options }), dhcpPort, '127.0.0.1');
  return xid;
}
const replies = (xid: number) => got.filter((p) => p.xid === xid);

describe('DHCP from the inventory', () => {
  it('provisioning networks: bad input is a 400 naming the field, an overlap a 409', async () => {
    const hostBits = await t.request({ method: 'POST', url: '/api/v1/boot-networks', body: { site: 'lab', name: 'bad', cidr: '127.0.0.1/16' } });
    expect(hostBits.status).toBe(400);
    expect(hostBits.json.error.field).toBe('cidr');
    const gw = await t.request({ method: 'POST', url: '/api/v1/boot-networks', body: { site: 'lab', name: 'bad', cidr: '127.0.0.0/16', gateway: '10.0.0.1' } });
    expect(gw.json.error.field).toBe('gateway');
    const ok = await t.request({ method: 'POST', url: '/api/v1/boot-networks', body: { site: 'lab', name: 'prov', cidr: '127.0.0.0/16', gateway: '127.0.0.254', dns: ['127.0.0.53'], leaseSeconds: 900 } });
    expect(ok.status).toBe(201);
    const overlap = await t.request({ method: 'POST', url: '/api/v1/boot-networks', body: { site: 'lab', name: 'other', cidr: '127.0.5.0/24' } });
    expect(overlap.status).toBe(409);
    expect((await t.request({ url: '/api/v1/boot-networks?site=lab' })).json).toHaveLength(1);
  });

  it('a server with a pending install gets its reserved address and the loader; the lease is kept, the job log says so; a known idle server and an unknown MAC are told apart', async () => {
    const mac = '52:54:00:aa:00:01';
    const dev = await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: 'rs-boot-1', role: 'rented-server', modelId: siteModel, bmc: { address: '127.0.0.2' }, nics: [{ name: 'eth0', mac, pxe: true, ip: '127.0.20.1' }] } });
    expect(dev.status).toBe(201);
    expect(dev.json.nics).toEqual([{ name: 'eth0', mac, pxe: true, ip: '127.0.20.1' }]);
    const id = dev.json.id;
    await t.request({ method: 'POST', url: `/api/v1/servers/${id}/transition`, body: { to: 'available' } });
    const job = (await t.request({ method: 'POST', url: `/api/v1/servers/${id}/install`, body: { os: 'debian-12', hostname: 'boot1.example.com', sshKeys: [KEY] } })).json;
    for (const to of ['reserved', 'deploying']) await t.request({ method: 'POST', url: `/api/v1/servers/${id}/transition`, body: { to } });

    const d = send(MSG.DISCOVER, mac, PXE);
    await until(async () => replies(d), (r) => r.length === 1, 3000);
    expect(replies(d)[0]).toMatchObject({ type: MSG.OFFER, yiaddr: '127.0.20.1', file: 'undionly.kpxe' });
    const r = send(MSG.REQUEST, mac, [[OPT.SERVER_ID, opt.ip('127.0.0.1')], [OPT.REQUESTED_IP, opt.ip('127.0.20.1')], ...PXE]);
    await until(async () => replies(r), (x) => x.length === 1, 3000);
    expect(replies(r)[0]!.type).toBe(MSG.ACK);
    const [lease] = await query<{ state: string; ip: string }>(t.db.url, `SELECT state, host(ip) AS ip FROM dhcp_leases WHERE mac = $1`, [mac]);
    expect(lease).toEqual({ state: 'bound', ip: '127.0.20.1' });
    const logs = await until(async () => (await t.request({ url: `/api/v1/jobs/${job.id}/logs` })).json, (l: { items?: { message: string }[] } | { message: string }[]) => JSON.stringify(l).includes('boot: DHCP ack'), 3000);
    expect(JSON.stringify(logs)).toContain(`boot: DHCP offer to ${mac} with loader undionly.kpxe`);

    // An idle known server still gets its address (for iPXE to be told "boot from disk").
    const idle = await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: 'rs-boot-2', role: 'rented-server', modelId: siteModel, nics: [{ name: 'eth0', mac: '52:54:00:aa:00:02', ip: '127.0.20.2' }] } });
    expect(idle.status).toBe(201);
    const i = send(MSG.DISCOVER, '52:54:00:aa:00:02', PXE);
    await until(async () => replies(i), (x) => x.length === 1, 3000);
    expect(replies(i)[0]!.yiaddr).toBe('127.0.20.2');

    const u = send(MSG.DISCOVER, '52:54:00:ff:ff:ff', PXE);
    await new Promise((res) => setTimeout(res, 300));
    expect(replies(u)).toEqual([]);
    // Not answered, but recorded for discovery (RACKSMITH_BOOT_DISCOVERY).
    expect((await t.request({ url: '/api/v1/boot/discovered' })).json).toEqual([expect.objectContaining({ mac: '52:54:00:ff:ff:ff', requests: 1, arch: 0, vendorClass: 'PXEClient:Arch:00000:UNDI:002001' })]);
    expect((await t.request({ url: '/health', token: '' })).json.checks.dhcp).toMatchObject({ status: 'ok', detail: expect.stringContaining('authoritative') });
  });

  it('a reserved address is one NIC\'s only: a second NIC with it is a 409', async () => {
    const res = await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: 'rs-boot-3', role: 'rented-server', modelId: siteModel, nics: [{ name: 'eth0', mac: '52:54:00:aa:00:03', ip: '127.0.20.1' }] } });
    expect(res.status).toBe(409);
    expect(await query(t.db.url, `SELECT 1 FROM devices WHERE name = 'rs-boot-3'`)).toEqual([]);
  });

  it('iPXE scripts by MAC: the installer of a pending install with its callback, disk for an idle server, 404 for an unknown MAC; kernels stream with Range', async () => {
    const mac = '52:54:00:aa:00:01'; // rs-boot-1, install pending (above)
    const job = (await query<{ id: string }>(t.db.url, `SELECT j.id FROM jobs j JOIN nics n ON n.device_id = j.server_id WHERE n.mac = $1`, [mac]))[0]!.id;
    const token = await t.app.get(InstallService).callbackToken(job);
    const script = await t.boot(`/boot/ipxe/${mac.replace(/:/g, '-').toUpperCase()}`);
    expect(script.status).toBe(200);
    expect(script.text).toContain('#!ipxe');
    expect(script.text).toContain(`kernel http://127.0.0.1:8080/boot/assets/debian-12/kernel initrd=initrd.gz auto=true url=http://127.0.0.1:8080/boot/templates/${job}/${token}/preseed.cfg hostname=boot1 domain=example.com racksmith.callback=http://127.0.0.1:8080/api/v1/install-callbacks/${job} racksmith.token=${token}`);
    expect(script.text).toContain('initrd --name initrd.gz http://127.0.0.1:8080/boot/assets/debian-12/initrd');
    const idle = await t.boot('/boot/ipxe/52:54:00:aa:00:02');
    expect(idle.text).toMatch(/boots from its disk\nexit 1\n/);
    // The same script over TFTP, for iPXE builds that chain by TFTP.
    // (curl runs beside the server in this process, so not execFileSync: it would block the server.)
    expect((await promisify(execFile)('curl', ['-sS', '-m', '10', `tftp://127.0.0.1:${tftpPort}/racksmith/52-54-00-aa-00-02.ipxe`], { encoding: 'utf8' })).stdout).toBe(idle.text);
    const unknown = await t.boot('/boot/ipxe/52:54:00:ff:ff:fe');
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain('not in the inventory');
    expect((await t.boot('/boot/ipxe/not-a-mac')).status).toBe(400);

    const whole = await t.boot('/boot/assets/debian-12/kernel');
    expect(whole.status).toBe(200);
    expect(Number(whole.headers['content-length'])).toBe(kernel.length);
    const part = await t.boot('/boot/assets/debian-12/kernel', { headers: { range: 'bytes=1000-1999' } });
    expect(part.status).toBe(206);
    expect(part.body.equals(kernel.subarray(1000, 2000))).toBe(true);
    expect(part.headers['content-range']).toBe(`bytes 1000-1999/${kernel.length}`);
    expect((await t.boot('/boot/assets/debian-12/../../etc/passwd')).status).toBe(404);
    const logs = JSON.stringify((await t.request({ url: `/api/v1/jobs/${job}/logs` })).json);
    expect(logs).toContain(`boot: iPXE script for debian-12 served to ${mac}`);
  });

  it('an OS whose installer files are missing gets a script that says so, and its job log the reason', async () => {
    const mac = '52:54:00:aa:00:09';
    const dev = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: 'rs-boot-9', role: 'rented-server', modelId: siteModel, bmc: { address: '127.0.0.2' }, nics: [{ name: 'eth0', mac }] } })).json;
    await t.request({ method: 'POST', url: `/api/v1/servers/${dev.id}/transition`, body: { to: 'available' } });
    const job = (await t.request({ method: 'POST', url: `/api/v1/servers/${dev.id}/install`, body: { os: 'rocky-9', hostname: 'r9.example.com', sshKeys: [KEY] } })).json;
    for (const to of ['reserved', 'deploying']) await t.request({ method: 'POST', url: `/api/v1/servers/${dev.id}/transition`, body: { to } });
    const script = await t.boot(`/boot/ipxe/${mac}`);
    expect(script.text).toContain('/nonexistent/vmlinuz is missing (Debian package none-here)');
    expect(script.text).toContain('exit 1');
    expect(JSON.stringify((await t.request({ url: `/api/v1/jobs/${job.id}/logs` })).json)).toContain('boot: /nonexistent/vmlinuz is missing');
  });

  it('install templates by job and token; progress, done and failed callbacks with the token in the URL, done only once', async () => {
    const mac = '52:54:00:aa:00:01';
    const job = (await query<{ id: string }>(t.db.url, `SELECT j.id FROM jobs j JOIN nics n ON n.device_id = j.server_id WHERE n.mac = $1`, [mac]))[0]!.id;
    const token = await t.app.get(InstallService).callbackToken(job);
    const preseed = await t.boot(`/boot/templates/${job}/${token}/preseed.cfg`);
    expect(preseed.status).toBe(200);
    expect(preseed.text).toContain('d-i netcfg/get_hostname string boot1');
    expect(preseed.text).toContain(`http://127.0.0.1:8080/api/v1/install-callbacks/${job}/done?token=${token}`);
    expect((await t.boot(`/boot/templates/${job}/${'x'.repeat(32)}/preseed.cfg`)).status).toBe(401);
    expect((await t.boot(`/boot/templates/${job}/${token}/ks.cfg`)).status).toBe(404);

    // A form body, as busybox and d-i wget send it.
    const progress = await t.request({ method: 'POST', url: `/api/v1/install-callbacks/${job}/progress?token=${token}`, token: '', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'message=partitioning' });
    expect(progress.status).toBe(202);
    expect((await t.request({ method: 'POST', url: `/api/v1/install-callbacks/${job}/done?token=wrong-token-wrong-token`, token: '' })).status).toBe(401);
    expect((await t.request({ method: 'POST', url: `/api/v1/install-callbacks/${job}/finished?token=${token}`, token: '' })).status).toBe(400);
    const done = await t.request({ method: 'POST', url: `/api/v1/install-callbacks/${job}/done?token=${token}`, token: '', body: { message: 'late_command ran' } });
    expect(done.status).toBe(202);
    const again = await t.request({ method: 'POST', url: `/api/v1/install-callbacks/${job}/failed?token=${token}`, token: '' });
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe('callback_used');
    expect((await t.boot(`/boot/templates/${job}/${token}/preseed.cfg`)).status).toBe(409);
    const logs = JSON.stringify((await t.request({ url: `/api/v1/jobs/${job}/logs` })).json);
    expect(logs).toContain('installer: partitioning');
    expect(logs).toContain('boot: debian-12 preseed.cfg (shipped) served');
    expect(await query(t.db.url, `SELECT status, message FROM install_callbacks WHERE job_id = $1 ORDER BY id`, [job])).toEqual([{ status: 'progress', message: 'partitioning' }, { status: 'done', message: 'late_command ran' }]);
  });
});
