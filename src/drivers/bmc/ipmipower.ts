import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../transport/process-runner';
import { BmcError, type BmcTarget, type PowerState } from './bmc-driver';
import { splitAddress } from './ipmitool.driver';

export interface IpmipowerOptions {
  /** FreeIPMI's ipmipower program. */
  program: string;
  cipherSuite: number;
  timeoutSeconds: number;
  retries: number;
  /** FreeIPMI workaround flags (`-W`), e.g. `opensesspriv` for OpenIPMI's ipmi_sim. Empty: none. */
  workarounds: string;
  /** BMCs asked at once by one ipmipower process (`-F`). */
  fanout: number;
}

/** What one BMC answered: its power state, or why it could not tell. */
export type PowerReading = PowerState | BmcError;

/** Hosts per ipmipower run: keeps the command line short and one failure small. */
const BATCH = 1000;

/** ipmipower's per-host answers, as racksmith's error kinds. */
function reading(address: string, text: string): PowerReading {
  if (text === 'on' || text === 'off') return text;
  if (/password invalid|username invalid|k_g invalid|privilege level|authentication type unavailable/i.test(text)) return new BmcError(`BMC ${address} refused racksmith's credentials: ${text}`, 'auth');
  if (/timeout|hostname invalid|BMC busy/i.test(text)) return new BmcError(`BMC ${address} unreachable: ${text}`, 'unreachable');
  return new BmcError(`BMC ${address}: ${text}`, 'protocol');
}

/**
 * Power state of many BMCs from one process: FreeIPMI's ipmipower speaks RMCP+ to all of them at
 * once from a single event loop, where ipmitool needs one process (~40 ms of CPU) per BMC.
 * Targets are grouped by credentials (one run per group; the credentials reach ipmipower in a
 * private config file, never on its command line) and each run holds a host once, because
 * ipmipower names its answers by host without the port.
 */
export class IpmipowerStatusReader {
  constructor(
    private readonly opts: IpmipowerOptions,
    private readonly runner = new ProcessRunner(),
  ) {}

  /** Session deadline per BMC in ms: the same bound as one ipmitool call. */
  private sessionMs(): number {
    return this.opts.timeoutSeconds * (this.opts.retries + 1) * 2 * 1000;
  }

  /**
   * Readings by serverId. Targets it cannot ask (IPv6 literals, no username) are left out, for
   * the caller to ask one by one, and so are the targets of a run that gave no answer at all (one
   * odd credential group never costs the others). Throws a BmcError when ipmipower itself cannot run.
   */
  async read(targets: BmcTarget[]): Promise<Map<string, PowerReading>> {
    const out = new Map<string, PowerReading>();
    for (const batch of batches(targets.filter((t) => t.username && !t.address.startsWith('[')))) {
      try {
        for (const [id, r] of await this.run(batch)) out.set(id, r);
      } catch (err) {
        if (err instanceof BmcError && err.kind === 'unsupported') throw err;
      }
    }
    return out;
  }

  private async run(batch: BmcTarget[]): Promise<Map<string, PowerReading>> {
    const { username, password } = batch[0]!;
    const dir = await mkdtemp(join(tmpdir(), 'racksmith-ipmipower-'));
    try {
      const config = join(dir, 'freeipmi.conf');
      // One key per line; a newline inside a credential would start another key, so refuse it.
      if (/[\r\n]/.test(`${username}${password ?? ''}`)) throw new BmcError('a BMC username or password holds a line break', 'auth');
      // No password: no `password` line (an empty one is a config error that ends the whole run).
      await writeFile(config, `username ${username}\n${password ? `password ${password}\n` : ''}`, { mode: 0o600 });
      const args = [
        '--config-file', config,
        '-D', 'LAN_2_0', '-I', String(this.opts.cipherSuite), '-l', 'USER',
        ...(this.opts.workarounds ? ['-W', this.opts.workarounds] : []),
        '--session-timeout', String(this.sessionMs()),
        '--retransmission-timeout', String(Math.min(this.opts.timeoutSeconds * 1000, this.sessionMs() / 2)),
        '-F', String(this.opts.fanout),
        '-h', batch.map((t) => t.address).join(','),
        '--stat',
      ];
      let result;
      try {
        result = await this.runner.run(this.opts.program, args, { timeoutMs: this.sessionMs() * Math.ceil(batch.length / this.opts.fanout) + 10_000, maxOutput: 4 << 20 });
      } catch (err) {
        throw new BmcError(`could not run ${this.opts.program}: ${(err as Error).message}`, 'unsupported');
      }
      const byHost = new Map<string, string>();
      for (const line of result.stdout.split('\n')) {
        const m = /^(.+?): (.+)$/.exec(line.trim());
        if (m) byHost.set(m[1]!, m[2]!);
      }
      const readings = new Map<string, PowerReading>();
      for (const t of batch) {
        const text = byHost.get(splitAddress(t.address).host);
        if (text !== undefined) readings.set(t.serverId, reading(t.address, text));
      }
      if (!readings.size && batch.length) {
        const why = (result.stderr || result.stdout).trim().split('\n').slice(-1)[0] || `exited with ${result.code}`;
        throw new BmcError(`${this.opts.program}: ${why}`, result.timedOut ? 'unreachable' : 'protocol');
      }
      return readings;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** Groups by credentials; within a group each batch names a host once and holds at most BATCH. */
function batches(targets: BmcTarget[]): BmcTarget[][] {
  const groups = new Map<string, { targets: BmcTarget[]; hosts: Set<string> }[]>();
  for (const t of targets) {
    const key = JSON.stringify([t.username, t.password ?? '']);
    const host = splitAddress(t.address).host;
    const list = groups.get(key) ?? [];
    groups.set(key, list);
    let batch = list.find((b) => b.targets.length < BATCH && !b.hosts.has(host));
    if (!batch) list.push((batch = { targets: [], hosts: new Set() }));
    batch.targets.push(t);
    batch.hosts.add(host);
  }
  return [...groups.values()].flat().map((b) => b.targets);
}
