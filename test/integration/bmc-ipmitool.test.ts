import { BmcError, type BmcTarget } from '../../src/drivers/bmc/bmc-driver';
import { IpmitoolBmcDriver, IPMITOOL_DEFAULTS } from '../../src/drivers/bmc/ipmitool.driver';
import { freeUdpPort, ipmitoolAs, startSimBmc, type SimBmc } from '../support/ipmi-sim';
import { until } from '../support/wait';

jest.setTimeout(60_000);

const driver = new IpmitoolBmcDriver(IPMITOOL_DEFAULTS);
let sim: SimBmc;
let t: BmcTarget;

beforeAll(async () => {
  sim = await startSimBmc({ withSol: true });
  t = { serverId: 'srv-1', address: sim.address, username: sim.username, password: sim.password };
});
afterAll(async () => sim?.stop());

describe('ipmitool driver against ipmi_sim', () => {
  it('reads and changes the simulated chassis power; on of a running server does not cycle it', async () => {
    sim.setPower('off');
    expect(await driver.powerStatus(t)).toBe('off');
    await driver.power(t, 'on');
    expect(sim.power()).toBe('on');
    expect(await driver.powerStatus(t)).toBe('on');
    const before = sim.chassisLog().length;
    await driver.power(t, 'on');
    expect(sim.chassisLog().length).toBe(before);
    await driver.power(t, 'off');
    expect(sim.power()).toBe('off');
    await driver.power(t, 'off'); // idempotent
    await driver.power(t, 'cycle'); // a cycle of a stopped machine powers it on
    expect(sim.power()).toBe('on');
  });

  it('sets a one-time PXE boot and back to disk', async () => {
    await driver.setBootDevice(t, 'pxe', { once: true });
    expect(sim.chassisLog()).toContain('boot pxe');
    await driver.setBootDevice(t, 'disk', { once: false, uefi: true });
    expect(sim.chassisLog().slice(-1)[0]).toMatch(/^boot (disk|default)/);
  });

  it('creates a user that logs in at its privilege, then disables and deletes it', async () => {
    const users = await driver.listUsers(t);
    expect(users.find((u) => u.slot === 2)).toMatchObject({ name: 'admin', enabled: true, privilege: 'administrator' });
    expect(users.find((u) => u.slot === 11)).toMatchObject({ name: '', enabled: false });

    await driver.createUser(t, { slot: 11, name: 'rs-test', password: 'S1xteen-chars-pw', privilege: 'operator' });
    expect((await driver.listUsers(t)).find((u) => u.slot === 11)).toMatchObject({ name: 'rs-test', enabled: true, privilege: 'operator' });
    expect(await driver.canLogin(t, 'rs-test', 'S1xteen-chars-pw', 'operator')).toBe(true);
    expect(ipmitoolAs(sim, 'rs-test', 'S1xteen-chars-pw', 'OPERATOR', 'power', 'status').stdout).toMatch(/Chassis Power is/);
    expect(await driver.canLogin(t, 'rs-test', 'wrong-password', 'operator')).toBe(false);
    // ipmi_sim does not enforce the limit: the OPERATOR user gets an ADMINISTRATOR session.
    expect(await driver.canLogin(t, 'rs-test', 'S1xteen-chars-pw', 'administrator')).toBe(true);

    await driver.setUserEnabled(t, 11, false);
    expect(await driver.canLogin(t, 'rs-test', 'S1xteen-chars-pw', 'operator')).toBe(false);
    await driver.deleteUser(t, 11);
    const gone = (await driver.listUsers(t)).find((u) => u.slot === 11)!;
    expect(gone).toMatchObject({ name: '', enabled: false, privilege: null });
    // The wrong-password attempt left a half-open session of the user, listed until ipmi_sim's
    // timeout (about 60 s); ipmi_sim closes sessions by id only, so it is reported, not hidden.
    const ended = await driver.endUserSessions(t, 11);
    expect(ended).toMatchObject({ closed: 0, payloadsDeactivated: 0, remaining: [expect.stringMatching(/^session handle \d+$/)] });
    expect(ended.refused).toEqual([expect.stringMatching(/^Close Session handle \d+: completion code 0x87$/)]);
  });

  it('refuses a slot out of range with the BMC message', async () => {
    await expect(driver.createUser(t, { slot: 70, name: 'x', password: 'y', privilege: 'user' })).rejects.toThrow(/invalid or out of range/);
  });

  it('a wrong password is an auth failure, not a timeout', async () => {
    const started = Date.now();
    const err = await driver.powerStatus({ ...t, password: 'nope' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BmcError);
    expect((err as BmcError).kind).toBe('auth');
    expect((err as BmcError).message).toMatch(/refused admin/);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('an unreachable BMC fails within seconds, naming it', async () => {
    const port = await freeUdpPort();
    const started = Date.now();
    const err = await driver.powerStatus({ ...t, address: `127.0.0.1:${port}` }).catch((e: unknown) => e);
    expect((err as BmcError).kind).toBe('unreachable');
    expect((err as BmcError).message).toContain(`127.0.0.1:${port}`);
    expect(Date.now() - started).toBeLessThan(8000);
  });

  it('serial-over-LAN passes bytes both ways and ends the payload on close', async () => {
    const sol = await driver.openSol(t);
    let seen = '';
    sol.stream.on('data', (d: Buffer) => (seen += d.toString('utf8')));
    await new Promise((r) => setTimeout(r, 500));
    sol.stream.write('ls -l\r');
    await until(async () => sim.serial.received(), (r) => r.includes('ls -l'));
    sim.serial.write('login: ');
    await until(async () => seen, (s) => s.includes('login: '));
    expect(seen).not.toContain('SOL Session operational');
    await sol.close();
    // The payload is free again: a second session opens.
    const again = await driver.openSol(t);
    let seen2 = '';
    again.stream.on('data', (d: Buffer) => (seen2 += d.toString('utf8')));
    await new Promise((r) => setTimeout(r, 500));
    sim.serial.write('again\r\n');
    await until(async () => seen2, (s) => s.includes('again'));
    await again.close();
  });
});
