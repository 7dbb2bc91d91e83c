import { readFileSync, statSync } from 'node:fs';
import { BmcError, type BmcTarget } from '../../src/drivers/bmc/bmc-driver';
import { IpmipowerStatusReader } from '../../src/drivers/bmc/ipmipower';
import { ProcessRunner, type RunOptions, type RunResult } from '../../src/drivers/transport/process-runner';

/** Records each ipmipower run (arguments and the config file it was given) and answers for it. */
class ScriptedRunner extends ProcessRunner {
  runs: { args: string[]; config: string; mode: number }[] = [];
  constructor(private readonly answer: (hosts: string[]) => string) {
    super();
  }
  override async run(_file: string, args: string[], _opts: RunOptions): Promise<RunResult> {
    const file = args[args.indexOf('--config-file') + 1]!;
    this.runs.push({ args, config: readFileSync(file, 'utf8'), mode: statSync(file).mode & 0o777 });
    const hosts = args[args.indexOf('-h') + 1]!.split(',');
    return { code: 0, signal: null, stdout: this.answer(hosts), stderr: '', timedOut: false };
  }
}

const opts = { program: 'ipmipower', cipherSuite: 3, timeoutSeconds: 1, retries: 1, workarounds: '', fanout: 64 };
const target = (serverId: string, address: string, password = 'pw-a'): BmcTarget => ({ serverId, address, username: 'admin', password });

describe('ipmipower status reader', () => {
  it('asks each credential group in one run, a host once per run, with the password only in a private file', async () => {
    const runner = new ScriptedRunner((hosts) => hosts.map((h, i) => `${h.split(':')[0]}: ${i % 2 ? 'off' : 'on'}`).join('\n'));
    const reader = new IpmipowerStatusReader(opts, runner);
    const readings = await reader.read([
      target('a', '10.0.0.1'),
      target('b', '10.0.0.2:623'),
      target('c', '10.0.0.1:1623'), // same host as a: another run
      target('d', '10.0.0.3', 'pw-b'), // other credentials: another run
      target('e', '[fe80::1]:623'), // left to the caller
    ]);
    expect(runner.runs).toHaveLength(3);
    for (const r of runner.runs) {
      expect(r.args.join(' ')).not.toContain('pw-');
      expect(r.mode).toBe(0o600);
    }
    expect(runner.runs.map((r) => r.config)).toEqual(expect.arrayContaining(['username admin\npassword pw-a\n', 'username admin\npassword pw-b\n']));
    expect(Object.fromEntries(readings)).toEqual({ a: 'on', b: 'off', c: 'on', d: 'on' });
  });

  it('maps the per-host failures to racksmith error kinds and leaves out hosts it did not hear about', async () => {
    const answers: Record<string, string> = { '10.0.0.1': 'password invalid', '10.0.0.2': 'connection timeout', '10.0.0.3': 'BMC error' };
    const reader = new IpmipowerStatusReader(opts, new ScriptedRunner((hosts) => hosts.filter((h) => answers[h]).map((h) => `${h}: ${answers[h]}`).join('\n')));
    const readings = await reader.read(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'].map((a, i) => target(String(i), a)));
    expect([...readings.keys()]).toEqual(['0', '1', '2']);
    expect((readings.get('0') as BmcError).kind).toBe('auth');
    expect((readings.get('1') as BmcError).kind).toBe('unreachable');
    expect((readings.get('2') as BmcError).kind).toBe('protocol');
    expect((readings.get('1') as BmcError).message).toContain('10.0.0.2');
  });

  it('a missing program is an error for the caller to fall back on; a credential with a line break is left to the caller', async () => {
    await expect(new IpmipowerStatusReader({ ...opts, program: '/nonexistent/ipmipower' }).read([target('a', '10.0.0.1')])).rejects.toMatchObject({ kind: 'unsupported' });
    const runner = new ScriptedRunner((hosts) => hosts.map((h) => `${h}: on`).join('\n'));
    const readings = await new IpmipowerStatusReader(opts, runner).read([target('a', '10.0.0.1', 'pw\nprivilege-level admin'), target('b', '10.0.0.2')]);
    expect(Object.fromEntries(readings)).toEqual({ b: 'on' });
    expect(runner.runs.map((r) => r.config)).toEqual(['username admin\npassword pw-a\n']);
  });

  it('gives a BMC without a password no password line, and one group that gets no answer never costs the others', async () => {
    const runner = new ScriptedRunner((hosts) => (hosts.includes('10.0.0.9') ? '' : hosts.map((h) => `${h}: off`).join('\n')));
    const none = { ...target('n', '10.0.0.1'), password: null };
    const readings = await new IpmipowerStatusReader(opts, runner).read([none, target('dead', '10.0.0.9', 'pw-z'), target('b', '10.0.0.2', 'pw-b')]);
    expect(runner.runs.map((r) => r.config).sort()).toEqual(['username admin\n', 'username admin\npassword pw-b\n', 'username admin\npassword pw-z\n']);
    // The dead group is left out for the caller to ask one by one; the rest was read in bulk.
    expect(Object.fromEntries(readings)).toEqual({ n: 'off', b: 'off' });
  });
});
