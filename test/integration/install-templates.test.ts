import { InstallService } from '../../src/modules/servers/install.service';
import { startTestApp, type TestApp } from '../support/app';

jest.setTimeout(60_000);

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl engineer@example';
let t: TestApp;
let shipped: string;

beforeAll(async () => {
  t = await startTestApp({ RACKSMITH_POWER_SYNC_INTERVAL: '0' });
  shipped = (await t.request({ url: '/api/v1/install-templates/debian-12/preseed.cfg' })).json.body;
});
afterAll(() => t?.close());

const save = (os: string, file: string, body: string, note?: string) => t.request({ method: 'PUT', url: `/api/v1/install-templates/${os}/${file}`, body: { body, note } });

describe('engineers\' install templates', () => {
  it('lists the shipped templates', async () => {
    const list = (await t.request({ url: '/api/v1/install-templates' })).json;
    expect(list).toEqual(expect.arrayContaining([{ os: 'debian-12', file: 'preseed.cfg', version: 0, source: 'shipped', updatedAt: null }, expect.objectContaining({ os: 'ubuntu-24.04', file: 'user-data', source: 'shipped' })]));
    expect(shipped).toContain('d-i netcfg/get_hostname string {{hostname}}');
  });

  it('refuses what does not render or fails the real tool, with the reason, and keeps nothing', async () => {
    const unclosed = await save('debian-12', 'preseed.cfg', `${shipped}\n{{#if disk.raid1}}\n`);
    expect(unclosed.status).toBe(400);
    expect(unclosed.json.error).toMatchObject({ code: 'template_invalid', field: 'body' });
    const unknown = await save('debian-12', 'preseed.cfg', `${shipped}\nd-i passwd/username string {{userName}}\n`);
    expect(unknown.json.error.message).toContain('userName');
    const badLine = await save('debian-12', 'preseed.cfg', `${shipped}\nd-i this-line-has-no-type\n`);
    expect(badLine.json.error).toMatchObject({ code: 'template_invalid', message: expect.stringContaining('debconf-set-selections -c') });
    const cloud = await save('ubuntu-24.04', 'user-data', '#cloud-config\nruncmd: 5\n');
    expect(cloud.json.error.message).toContain('cloud-init schema');
    const shell = await save('freebsd-14', 'installerconfig', 'PARTITIONS=ada0\n#!/bin/sh\nif then fi (\n');
    expect(shell.json.error.message).toContain('sh -n');
    expect((await save('windows-11', 'unattend.xml', 'x')).json.error).toMatchObject({ code: 'validation_failed', field: 'os' });
    expect((await save('debian-12', '..%2Fescape', 'x')).status).toBe(400);
    expect((await t.request({ url: '/api/v1/install-templates/debian-12/preseed.cfg' })).json.versions).toEqual([]);
  });

  it('each save is a new version; installs get the newest, and the job log names it', async () => {
    const v1 = await save('debian-12', 'preseed.cfg', `${shipped}\nd-i time/zone string Europe/Moscow\n`, 'Moscow time');
    expect(v1.status).toBe(200);
    expect(v1.json).toMatchObject({ version: 1, note: 'Moscow time', createdBy: 'bootstrap' });
    const v2 = await save('debian-12', 'preseed.cfg', `${shipped}\nd-i time/zone string Europe/Riga\n`);
    expect(v2.json.version).toBe(2);
    const got = (await t.request({ url: '/api/v1/install-templates/debian-12/preseed.cfg' })).json;
    expect(got).toMatchObject({ version: 2, source: 'custom' });
    expect(got.body).toContain('Europe/Riga');
    expect(got.versions.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    expect((await t.request({ url: '/api/v1/audit?action=install-template.save' })).json.items).toHaveLength(2);

    await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
    const modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: '1U', heightU: 1, bmcDriver: 'fake' } })).json.id;
    const dev = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: 'tpl-1', role: 'rented-server', modelId, bmc: { address: '127.0.0.2' } } })).json;
    await t.request({ method: 'POST', url: `/api/v1/servers/${dev.id}/transition`, body: { to: 'available' } });
    const job = (await t.request({ method: 'POST', url: `/api/v1/servers/${dev.id}/install`, body: { os: 'debian-12', hostname: 'tpl1.example.com', sshKeys: [KEY] } })).json;
    const token = await t.app.get(InstallService).callbackToken(job.id);
    const preseed = await t.boot(`/boot/templates/${job.id}/${token}/preseed.cfg`);
    expect(preseed.text).toContain('d-i time/zone string Europe/Riga');
    expect(preseed.text).toContain('d-i netcfg/get_hostname string tpl1');
    expect(JSON.stringify((await t.request({ url: `/api/v1/jobs/${job.id}/logs` })).json)).toContain('boot: debian-12 preseed.cfg (version 2) served');
  });
});
