import { Client } from 'pg';
import type { Logger } from 'pino';

export interface PgListenerOptions {
  connectTimeoutMs: number;
  /** Wait before connecting again after the connection was lost or refused. */
  retryMs?: number;
}

/**
 * PostgreSQL LISTEN on one channel, on a connection of its own (outside the pool, so a busy pool
 * never delays a notification), fanned out by payload to the subscribers of that key. Connects
 * when the first subscriber comes; a lost connection is logged, subscribers are told `listening`
 * is false (they poll meanwhile) and it connects again. On every loss and (re)connect each
 * subscriber is woken once: it starts polling, or catches up on what was sent while it was down.
 */
export class PgListener {
  private client: Client | null = null;
  private connecting?: Promise<void>;
  private retry?: NodeJS.Timeout;
  private closed = false;
  private readonly subs = new Map<string, Set<() => void>>();

  constructor(
    private readonly url: string,
    private readonly channel: string,
    private readonly log: Logger,
    private readonly opts: PgListenerOptions,
  ) {
    if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`not a channel name: ${channel}`);
  }

  /** True while notifications arrive; false: subscribers must poll. */
  get listening(): boolean {
    return this.client !== null;
  }

  /** Calls fn on each notification whose payload is key; returns the unsubscribe. */
  subscribe(key: string, fn: () => void): () => void {
    let set = this.subs.get(key);
    if (!set) this.subs.set(key, (set = new Set()));
    set.add(fn);
    this.ensure();
    return () => {
      set.delete(fn);
      if (!set.size && this.subs.get(key) === set) this.subs.delete(key);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    await this.connecting;
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }

  private ensure(): void {
    if (this.client || this.connecting || this.retry || this.closed) return;
    this.connecting = this.connect().finally(() => (this.connecting = undefined));
  }

  private async connect(): Promise<void> {
    const c = new Client({ connectionString: this.url, connectionTimeoutMillis: this.opts.connectTimeoutMs, keepAlive: true, application_name: 'racksmith-listen' });
    c.on('notification', (m) => {
      if (m.channel !== this.channel || !m.payload) return;
      for (const fn of this.subs.get(m.payload) ?? []) fn();
    });
    c.on('error', (err) => this.lost(c, err));
    c.on('end', () => this.lost(c, new Error('the connection ended')));
    try {
      await c.connect();
      await c.query(`LISTEN ${this.channel}`);
    } catch (err) {
      c.removeAllListeners('end');
      await c.end().catch(() => undefined);
      this.log.warn({ channel: this.channel, err: (err as Error).message }, 'cannot LISTEN: polling until the connection is back');
      this.again();
      return;
    }
    if (this.closed) {
      await c.end().catch(() => undefined);
      return;
    }
    this.client = c;
    this.log.debug({ channel: this.channel }, 'listening');
    this.wakeAll();
  }

  /** Every subscriber once: after a (re)connect they catch up, after a loss they start polling. */
  private wakeAll(): void {
    for (const set of [...this.subs.values()]) for (const fn of [...set]) fn();
  }

  private lost(c: Client, err: Error): void {
    if (this.client !== c) return;
    this.client = null;
    c.removeAllListeners('end');
    void c.end().catch(() => undefined);
    if (this.closed) return;
    this.log.warn({ channel: this.channel, err: err.message }, 'LISTEN connection lost: polling until it is back');
    this.wakeAll();
    this.again();
  }

  private again(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.subs.size) this.ensure();
    }, this.opts.retryMs ?? 2000);
    this.retry.unref();
  }
}
