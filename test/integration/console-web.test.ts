import WebSocket from 'ws';
import { BOOTSTRAP, startTestApp, type TestApp } from '../support/app';
import { startSimBmc, type SimBmc } from '../support/ipmi-sim';
import { until } from '../support/wait';

jest.setTimeout(60_000);

let t: TestApp;
let sim: SimBmc;
let base: string;
let serverId: string;

beforeAll(async () => {
  t = await startTestApp({ RACKSMITH_POWER_SYNC_INTERVAL: '0' });
  await t.app.listen(0, '127.0.0.1');
  base = `127.0.0.1:${(t.app.getHttpServer().address() as { port: number }).port}`;
  sim = await startSimBmc({ withSol: true });
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'Lab' } });
  const modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'T', model: 'SOL', heightU: 1, bmcDriver: 'ipmitool' } })).json.id;
  serverId = (
    await t.request({
      method: 'POST',
      url: '/api/v1/devices',
      body: { site: 'lab', name: 'sol-1', role: 'rented-server', modelId, bmc: { address: sim.address, username: sim.username, password: sim.password, acceptPrivilegeRisk: true } },
    })
  ).json.id;
});
afterAll(async () => {
  await t?.close();
  await sim?.stop();
});

interface Conn {
  ws: WebSocket;
  text: () => string;
  statuses: { type: string; writer?: boolean; message?: string }[];
  closed: Promise<number>;
}

function connect(hello: unknown): Promise<Conn> {
  const ws = new WebSocket(`ws://${base}/api/v1/console/ws`);
  let text = '';
  const statuses: Conn['statuses'] = [];
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) text += data.toString('utf8');
    else statuses.push(JSON.parse(data.toString()));
  });
  const closed = new Promise<number>((r) => ws.on('close', (code: number) => r(code)));
  return new Promise((resolve, reject) => {
    ws.on('open', () => {
      ws.send(JSON.stringify(hello));
      resolve({ ws, text: () => text, statuses, closed });
    });
    ws.on('error', reject);
  });
}

describe('web serial console', () => {
  it('relays SOL both ways for a grant, one writer, engineers watch, and closes when the grant is revoked', async () => {
    const g = (await t.request({ method: 'POST', url: `/api/v1/servers/${serverId}/console-grants`, body: { customer: 'cust-9', ttl: 600 } })).json;
    const url = new URL(g.consoleUrl);
    const page = await t.request({ url: url.pathname, token: '' });
    expect(page.status).toBe(200);
    expect(page.text).toContain('/console/assets/xterm.js');
    expect((await t.request({ url: '/console/assets/xterm.js', token: '' })).text).toContain('Terminal');

    const customer = await connect({ grant: g.id, token: url.hash.slice(1) });
    await until(async () => customer.statuses, (s) => s.some((x) => x.type === 'status' && x.writer === true));
    sim.serial.write('Debian GNU/Linux 12 sol-1 ttyS0\r\nsol-1 login: ');
    await until(async () => customer.text(), (s) => s.includes('sol-1 login: '));
    customer.ws.send(Buffer.from('root\r'));
    await until(async () => sim.serial.received(), (r) => r.includes('root\r'));

    // An engineer joins: sees the same output, cannot type while the customer holds the console.
    const engineer = await connect({ server: serverId, apiToken: BOOTSTRAP });
    await until(async () => engineer.statuses, (s) => s.some((x) => x.type === 'status' && x.writer === false));
    sim.serial.write('Password: ');
    await until(async () => engineer.text(), (s) => s.includes('Password: '));
    engineer.ws.send(Buffer.from('reboot\r'));
    await new Promise((r) => setTimeout(r, 300));
    expect(sim.serial.received()).not.toContain('reboot');

    // Revoked: the customer's console closes; the engineer becomes the writer.
    await t.request({ method: 'DELETE', url: `/api/v1/console-grants/${g.id}` });
    expect(await customer.closed).toBe(4403);
    await until(async () => engineer.statuses, (s) => s.some((x) => x.writer === true));
    engineer.ws.send(Buffer.from('whoami\r'));
    await until(async () => sim.serial.received(), (r) => r.includes('whoami'));
    engineer.ws.close();
    await engineer.closed;

    const audit = await t.request({ url: `/api/v1/audit?action=console.session.open&targetId=${serverId}` });
    expect(audit.json.items.map((a: { actor: { name: string } }) => a.actor.name).sort()).toEqual(['bootstrap', 'customer:cust-9']);
  });

  it('refuses a wrong token, a revoked grant, a non-JSON hello, and a read-only API token', async () => {
    const g = (await t.request({ method: 'POST', url: `/api/v1/servers/${serverId}/console-grants`, body: { customer: 'cust-8', ttl: 600 } })).json;
    const bad = await connect({ grant: g.id, token: 'not-the-token' });
    expect(await bad.closed).toBe(4401);
    expect(bad.statuses[0]).toMatchObject({ type: 'error', message: 'not authorised for this console' });

    const ro = (await t.request({ method: 'POST', url: '/api/v1/tokens', body: { name: 'viewer', role: 'readonly' } })).json.token;
    expect(await (await connect({ server: serverId, apiToken: ro })).closed).toBe(4401);

    const ws = new WebSocket(`ws://${base}/api/v1/console/ws`);
    const closed = new Promise<number>((r) => ws.on('close', (code: number) => r(code)));
    ws.on('open', () => ws.send('hello?'));
    expect(await closed).toBe(4401);

    await t.request({ method: 'DELETE', url: `/api/v1/console-grants/${g.id}` });
    expect(await (await connect({ grant: g.id, token: new URL(g.consoleUrl).hash.slice(1) })).closed).toBe(4401);
    expect((await t.request({ url: '/console/not-a-uuid', token: '' })).status).toBe(404);
  });
});
