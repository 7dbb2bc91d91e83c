import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestApp, type TestApp } from '../support/app';
import { query } from '../support/db';
import { startSimBmc, type SimBmc } from '../support/ipmi-sim';
import { InventoryImportService } from '../../src/modules/inventory/inventory-import.service';
import { loadInventory } from '../../src/modules/inventory/inventory-files';
import { BmcCredentialsService, credentialNameOfEnv } from '../../src/modules/inventory/bmc-credentials.service';
import { loadConfig } from '../../src/config/config';

/**
 * Issue 21 §4: the inventory YAML names a credential (`bmc.passwordRef`) instead of holding a
 * password; many BMCs take their credentials in one call (`POST /api/v1/devices/bmc`).
 */
jest.setTimeout(60_000);

let t: TestApp;
let sim: SimBmc;
beforeAll(async () => {
  t = await startTestApp({ RACKSMITH_POWER_SYNC_INTERVAL: '0' });
  sim = await startSimBmc({ initialPower: 'off', host: '127.0.0.71' });
});
afterAll(async () => {
  await sim?.stop();
  await t?.close();
});

function inventory(devices: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-cred-'));
  writeFileSync(
    join(dir, 'inv.yaml'),
    `hardwareModels:\n  - { vendor: Sim, model: IPMI, heightU: 1, bmcDriver: ipmitool }\nsites:\n  - code: credlab\n    name: Credential lab\n    devices:\n${devices}`,
  );
  return dir;
}
const bmcLine = (name: string, ref: string, port: number) => `      - { name: ${name}, role: rented-server, model: Sim/IPMI, bmc: { address: 127.0.0.71, port: ${port}, username: ${sim.username}, passwordRef: ${ref} } }\n`;

describe('named BMC credentials', () => {
  it('are set, listed without their secret, and refused with a clear error when malformed', async () => {
    const put = await t.request({ method: 'PUT', url: '/api/v1/bmc-credentials/sim-admin', body: { secret: sim.password } });
    expect(put.status).toBe(201);
    expect(put.json).toMatchObject({ name: 'sim-admin', usedBy: 0 });
    const list = await t.request({ url: '/api/v1/bmc-credentials' });
    expect(list.json).toEqual([expect.objectContaining({ name: 'sim-admin', usedBy: 0 })]);
    expect(list.text).not.toContain(sim.password);
    expect((await t.request({ method: 'PUT', url: '/api/v1/bmc-credentials/Bad_Name', body: { secret: 'x' } })).json.error.field).toBe('name');
    expect((await t.request({ method: 'PUT', url: '/api/v1/bmc-credentials/ok', body: { secret: '' } })).json.error.field).toBe('secret');
    expect((await t.request({ method: 'PUT', url: '/api/v1/bmc-credentials/ok', body: { secret: 'a\nb' } })).json.error.field).toBe('secret');
    expect(await query(t.db.url, "SELECT name FROM bmc_credentials WHERE name = 'ok'")).toEqual([]);
    // Stored sealed, not in clear.
    const [row] = await query<{ secret_enc: string }>(t.db.url, "SELECT secret_enc FROM bmc_credentials WHERE name = 'sim-admin'");
    expect(row!.secret_enc).not.toContain(sim.password);
  });

  it('an inventory file names one: an unknown name is refused naming the field and nothing is written; a known one reaches the real BMC', async () => {
    const port = Number(sim.address.split(':')[1]);
    await expect(t.app.get(InventoryImportService).import(loadInventory(inventory(bmcLine('cred-1', 'nobody-set-this', port))))).rejects.toMatchObject({
      code: 'validation_failed',
      field: 'sites.credlab.devices[0].bmc.passwordRef',
    });
    expect(await query(t.db.url, "SELECT 1 FROM devices WHERE name = 'cred-1'")).toEqual([]);

    const report = await t.app.get(InventoryImportService).import(loadInventory(inventory(bmcLine('cred-1', 'sim-admin', port))));
    expect(report.created).toBeGreaterThan(0);
    const [dev] = (await t.request({ url: '/api/v1/devices?q=cred-1' })).json.items;
    expect(dev.bmc).toMatchObject({ address: '127.0.0.71', port, passwordSet: true, passwordRef: 'sim-admin' });
    for (const to of ['available', 'reserved', 'deploying', 'active']) await t.request({ method: 'POST', url: `/api/v1/servers/${dev.id}/transition`, body: { to } });
    expect((await t.request({ method: 'POST', url: `/api/v1/servers/${dev.id}/power`, body: { action: 'on' } })).json).toMatchObject({ powerState: 'on' });
    expect(sim.power()).toBe('on');

    // A changed secret is every BMC's that names it: a wrong one is refused by the BMC, the right one works again.
    await t.request({ method: 'PUT', url: '/api/v1/bmc-credentials/sim-admin', body: { secret: 'not-the-password' } });
    const refused = await t.request({ method: 'POST', url: `/api/v1/servers/${dev.id}/power`, body: { action: 'off' } });
    expect(refused.status).toBe(502);
    expect(refused.json.error.code).toBe('bmc_auth_failed');
    await t.request({ method: 'PUT', url: '/api/v1/bmc-credentials/sim-admin', body: { secret: sim.password } });
    expect((await t.request({ method: 'POST', url: `/api/v1/servers/${dev.id}/power`, body: { action: 'off' } })).json).toMatchObject({ powerState: 'off' });

    // In use: not removed.
    const del = await t.request({ method: 'DELETE', url: '/api/v1/bmc-credentials/sim-admin' });
    expect(del.status).toBe(409);
    expect(del.json.error.code).toBe('credential_in_use');
    // The export keeps the name, never a secret.
    const exported = JSON.stringify(await t.app.get(InventoryImportService).export());
    expect(exported).toContain('"passwordRef":"sim-admin"');
    expect(exported).not.toContain(sim.password);
  });

  it('many devices take their credentials in one call, all or nothing', async () => {
    const lines = Array.from({ length: 200 }, (_, i) => `      - { name: bulk-${i}, role: rented-server, model: Sim/IPMI, bmc: { address: 10.255.${i >> 8}.${i & 255}, username: admin } }\n`).join('');
    await t.app.get(InventoryImportService).import(loadInventory(inventory(lines)));
    const devices = Array.from({ length: 200 }, (_, i) => ({ site: 'credlab', name: `bulk-${i}`, passwordRef: 'sim-admin' }));

    const bad = await t.request({ method: 'POST', url: '/api/v1/devices/bmc', body: { devices: [...devices.slice(0, 5), { site: 'credlab', name: 'no-such-device', password: 'x' }] } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.field).toBe('devices.5.name');
    expect((await t.request({ method: 'POST', url: '/api/v1/devices/bmc', body: { devices: [{ site: 'credlab', name: 'bulk-0', password: 'x', passwordRef: 'sim-admin' }] } })).json.error.field).toBe('devices.0.passwordRef');
    expect((await t.request({ method: 'POST', url: '/api/v1/devices/bmc', body: { devices: [{ site: 'credlab', name: 'bulk-0', passwordRef: 'unknown-ref' }] } })).json.error.field).toBe('devices.0.passwordRef');
    expect(await query(t.db.url, "SELECT count(*)::int AS n FROM devices WHERE name LIKE 'bulk-%' AND bmc_password_ref IS NOT NULL")).toEqual([{ n: 0 }]);

    const started = Date.now();
    const ok = await t.request({ method: 'POST', url: '/api/v1/devices/bmc', body: { devices } });
    const ms = Date.now() - started;
    expect(ok.status).toBe(200);
    expect(ok.json).toEqual({ updated: 200 });
    expect(await query(t.db.url, "SELECT count(*)::int AS n FROM devices WHERE name LIKE 'bulk-%' AND bmc_password_ref = 'sim-admin'")).toEqual([{ n: 200 }]);
    expect((await t.request({ url: '/api/v1/bmc-credentials' })).json[0]).toMatchObject({ name: 'sim-admin', usedBy: 201 });
    // A password of its own replaces the reference.
    await t.request({ method: 'POST', url: '/api/v1/devices/bmc', body: { devices: [{ site: 'credlab', name: 'bulk-0', password: 'own-secret' }] } });
    expect(await query(t.db.url, "SELECT bmc_password_ref, bmc_password_enc IS NOT NULL AS own FROM devices WHERE name = 'bulk-0'")).toEqual([{ bmc_password_ref: null, own: true }]);
    const audit = await query<{ changes: unknown }>(t.db.url, "SELECT changes FROM audit_events WHERE action = 'device.bmc-credentials' ORDER BY at DESC LIMIT 1");
    expect(JSON.stringify(audit)).not.toContain('own-secret');
    process.stdout.write(`200 BMCs' credentials in one call: ${ms} ms\n`);
  });

  it('RACKSMITH_CREDENTIAL_<NAME> sets one at start, and is not an unknown setting', async () => {
    expect(credentialNameOfEnv('RACKSMITH_CREDENTIAL_RACK_A')).toBe('rack-a');
    expect(credentialNameOfEnv('RACKSMITH_PORT')).toBeNull();
    expect(() => loadConfig({ RACKSMITH_CREDENTIAL_RACK_A: 'x' })).not.toThrow();
    const set = await t.app.get(BmcCredentialsService).loadFromEnv({ RACKSMITH_CREDENTIAL_RACK_A: 'from-env', OTHER: 'x' });
    expect(set).toEqual(['rack-a']);
    // The same value again changes nothing.
    expect(await t.app.get(BmcCredentialsService).loadFromEnv({ RACKSMITH_CREDENTIAL_RACK_A: 'from-env' })).toEqual([]);
    expect((await t.request({ url: '/api/v1/bmc-credentials' })).json.map((c: { name: string }) => c.name)).toContain('rack-a');
  });
});
