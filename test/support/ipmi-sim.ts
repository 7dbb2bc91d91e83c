import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePeer } from './peers';
import { until } from './wait';

/**
 * A simulated BMC for the lab tests: OpenIPMI's ipmi_sim on 127.0.0.1:<udp port>, its chassis
 * power kept in a file the test can read, and its serial port (for SOL) connected to a TCP
 * server the test owns: `serial.write()` is what the machine prints, `serial.received` what
 * reached it.
 */
export interface SimBmc {
  address: string;
  username: string;
  password: string;
  dir: string;
  pid: number;
  power(): 'on' | 'off';
  setPower(state: 'on' | 'off'): void;
  /** Every `set …` the BMC passed to the chassis, in order ("power 1", "boot pxe", …). */
  chassisLog(): string[];
  serial: { write(data: string): void; received(): string; connected(): boolean };
  stop(): Promise<void>;
}

export const IPMI_SIM = '/usr/bin/ipmi_sim';
export const IPMITOOL = '/usr/bin/ipmitool';

export function requireIpmiPeers(): void {
  requirePeer(IPMI_SIM, 'openipmi');
  requirePeer(IPMITOOL, 'ipmitool');
}

/** A UDP port nobody holds right now on 127.0.0.1. */
export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const CHASSIS = `#!/bin/sh
# ipmi_sim chassis_control: <mc> get|set <name> [value] ...
dir="$(dirname "$0")"
shift
op="$1"; shift
if [ "$op" = get ]; then
  for p in "$@"; do
    case "$p" in
      power) echo "power:$(cat "$dir/power")" ;;
      boot) echo "boot:$(cat "$dir/boot" 2>/dev/null || echo default)" ;;
    esac
  done
else
  while [ $# -gt 0 ]; do
    case "$1" in
      power) echo "$2" > "$dir/power" ;;
      boot) echo "$2" > "$dir/boot" ;;
    esac
    echo "$1 $2" >> "$dir/chassis.log"
    shift 2
  done
fi
`;

/** `host`: a loopback address of its own (127.0.0.x), for tools that tell BMCs apart by host only. */
export async function startSimBmc(opts: { password?: string; withSol?: boolean; initialPower?: 'on' | 'off'; host?: string; port?: number } = {}): Promise<SimBmc> {
  const host = opts.host ?? '127.0.0.1';
  requireIpmiPeers();
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-bmc-'));
  mkdirSync(join(dir, 'state'));
  const port = opts.port ?? (await freeUdpPort());
  const password = opts.password ?? 'sim-admin-pw';
  writeFileSync(join(dir, 'power'), opts.initialPower === 'on' ? '1\n' : '0\n');
  writeFileSync(join(dir, 'chassis.sh'), CHASSIS);
  chmodSync(join(dir, 'chassis.sh'), 0o755);

  // The machine's serial port: ipmi_sim connects to it and keeps retrying until it can.
  let serialSocket: Socket | undefined;
  let received = '';
  let serialServer: Server | undefined;
  let solLine = '';
  if (opts.withSol) {
    serialServer = createServer((sock) => {
      serialSocket = sock;
      sock.on('data', (d) => (received += d.toString('latin1')));
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => serialServer!.listen(0, '127.0.0.1', () => r()));
    const solPort = (serialServer.address() as { port: number }).port;
    solLine = `  sol "tcp:127.0.0.1:${solPort}" 115200\n`;
  }

  writeFileSync(
    join(dir, 'lan.conf'),
    `name "sim${port}"
set_working_mc 0x20
  startlan 1
    addr ${host} ${port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "${join(dir, 'chassis.sh')} 0x20"
${solLine}  user 2 true "admin" "${password}" admin 10 md5 md2 straight none
`,
  );
  writeFileSync(
    join(dir, 'sim.emu'),
    'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n',
  );
  const child: ChildProcess = spawn(IPMI_SIM, ['-c', join(dir, 'lan.conf'), '-f', join(dir, 'sim.emu'), '-s', join(dir, 'state'), '-n'], { stdio: 'ignore' });
  const address = `${host}:${port}`;
  const sim: SimBmc = {
    address,
    username: 'admin',
    password,
    dir,
    pid: child.pid!,
    power: () => (readFileSync(join(dir, 'power'), 'utf8').trim() === '1' ? 'on' : 'off'),
    setPower: (state) => writeFileSync(join(dir, 'power'), state === 'on' ? '1\n' : '0\n'),
    chassisLog: () => (existsSync(join(dir, 'chassis.log')) ? readFileSync(join(dir, 'chassis.log'), 'utf8').trim().split('\n').filter(Boolean) : []),
    serial: {
      write: (data) => serialSocket?.write(data),
      received: () => received,
      connected: () => !!serialSocket,
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise<void>((r) => {
          const timer = setTimeout(() => { child.kill('SIGKILL'); r(); }, 2000);
          child.once('exit', () => { clearTimeout(timer); r(); });
        });
      }
      serialSocket?.destroy();
      await new Promise<void>((r) => (serialServer ? serialServer.close(() => r()) : r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // Ready when it answers a session (ipmi_sim needs a moment to bind).
  await until(
    async () => spawnSync(IPMITOOL, ['-I', 'lanplus', '-C', '3', '-H', host, '-p', String(port), '-U', 'admin', '-E', '-L', 'USER', '-N', '1', '-R', '1', 'power', 'status'], { env: { ...process.env, IPMI_PASSWORD: password }, encoding: 'utf8' }).stdout,
    (out) => /Chassis Power is/.test(out),
    10_000,
    100,
  ).catch(async (err) => {
    await sim.stop();
    throw err;
  });
  if (opts.withSol) await until(async () => sim.serial.connected(), (c) => c, 10_000);
  return sim;
}

/** ipmitool as a person would run it against a sim, for checking what racksmith did. */
export function ipmitoolAs(sim: SimBmc, username: string, password: string, privilege: string, ...command: string[]): { code: number | null; stdout: string; stderr: string } {
  const [host, port] = sim.address.split(':');
  const r = spawnSync(IPMITOOL, ['-I', 'lanplus', '-C', '3', '-H', host!, '-p', port!, '-U', username, '-E', '-L', privilege, '-N', '1', '-R', '1', ...command], {
    env: { ...process.env, IPMI_PASSWORD: password },
    encoding: 'utf8',
    timeout: 15_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
