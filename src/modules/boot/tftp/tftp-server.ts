import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { dataPacket, errorPacket, oackPacket, OP, parsePacket, TFTP_ERROR, toNetascii } from './tftp-packet';

/** What a transfer reads: a size and ranges of bytes. */
export interface TftpFile {
  size: number;
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** Why a request gets no file. `access`: the name is refused (outside the root, say): error 2. */
export class TftpRefusal extends Error {
  constructor(
    readonly code: 'not-found' | 'access',
    message: string,
  ) {
    super(message);
  }
}

export interface TftpClient {
  address: string;
  port: number;
}

export interface TftpServerOptions {
  address: string;
  port: number;
  /** Opens a file for a client, or throws a TftpRefusal. */
  open(filename: string, client: TftpClient): Promise<TftpFile>;
  /** Largest block size offered (RFC 2348 lets a client ask for up to 65464). */
  maxBlksize?: number;
  /** Largest window offered (RFC 7440). */
  maxWindowsize?: number;
  /** First retransmission timeout in ms (a client's `timeout` option overrides it); it doubles per retry. */
  timeoutMs?: number;
  /** Retransmissions of one window before the transfer is given up. */
  retries?: number;
  /** Transfers at once, in all and per client address. */
  maxTransfers?: number;
  maxPerClient?: number;
  log: Logger;
}

export type TransferOutcome = 'done' | 'timeout' | 'client-error' | 'read-error';
export interface TransferEnd {
  client: TftpClient;
  filename: string;
  outcome: TransferOutcome;
  bytes: number;
  ms: number;
  blksize: number;
  windowsize: number;
  retransmits: number;
}

const MAX_BACKOFF_MS = 8000;
/** Bytes read from a file at once (a window's worth, at least). */
const READ_CHUNK = 256 * 1024;

/**
 * A read-only TFTP server: RFC 1350 with options (2347), blksize (2348), tsize and timeout (2349)
 * and windowsize (7440). Each transfer has its own socket (its TID). Only the sender's own timer
 * retransmits: a duplicate or stale ACK changes nothing, so there is no Sorcerer's Apprentice
 * storm. Malformed packets get no answer. Emits `transfer` (TransferEnd) when a transfer ends.
 */
export class TftpServer extends EventEmitter {
  private socket?: Socket;
  private readonly transfers = new Set<Transfer>();
  private readonly perClient = new Map<string, number>();
  private readonly opts: Required<Omit<TftpServerOptions, 'log' | 'open'>> & Pick<TftpServerOptions, 'log' | 'open'>;

  constructor(opts: TftpServerOptions) {
    super();
    this.opts = { maxBlksize: 65464, maxWindowsize: 64, timeoutMs: 1000, retries: 5, maxTransfers: 1000, maxPerClient: 16, ...opts };
  }

  get active(): number {
    return this.transfers.size;
  }

  async start(): Promise<{ address: string; port: number }> {
    const socket = createSocket({ type: 'udp4', reuseAddr: false });
    socket.on('message', (msg, rinfo) => this.onRequest(socket, msg, rinfo));
    socket.on('error', (err) => this.opts.log.error({ err: err.message }, 'tftp socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.opts.port, this.opts.address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.socket = socket;
    const a = socket.address();
    return { address: a.address, port: a.port };
  }

  async stop(): Promise<void> {
    for (const t of [...this.transfers]) t.abort();
    await new Promise<void>((r) => (this.socket ? this.socket.close(() => r()) : r()));
    this.socket = undefined;
  }

  private onRequest(socket: Socket, msg: Buffer, rinfo: RemoteInfo): void {
    let packet;
    try {
      packet = parsePacket(msg);
    } catch {
      packet = null;
    }
    if (!packet) return; // not TFTP: no answer
    const client = { address: rinfo.address, port: rinfo.port };
    const reply = (code: number, message: string) => socket.send(errorPacket(code, message), client.port, client.address);
    if (packet.op === OP.WRQ) {
      this.opts.log.warn({ client: client.address, filename: packet.filename }, 'tftp write refused (read-only server)');
      return reply(TFTP_ERROR.ACCESS, 'read-only server');
    }
    if (packet.op !== OP.RRQ) return; // a stray DATA/ACK/ERROR on port 69: no answer
    if (this.transfers.size >= this.opts.maxTransfers || (this.perClient.get(client.address) ?? 0) >= this.opts.maxPerClient) {
      this.opts.log.warn({ client: client.address, active: this.transfers.size }, 'tftp transfer limit reached');
      return reply(TFTP_ERROR.UNDEFINED, 'server busy, try again');
    }
    const t = new Transfer(this, client, packet.filename, packet.mode, packet.options);
    this.transfers.add(t);
    this.perClient.set(client.address, (this.perClient.get(client.address) ?? 0) + 1);
    void t.run().catch((err: Error) => this.opts.log.error({ err: err.message, client: client.address }, 'tftp transfer failed'));
  }

  /** Called by a transfer when it is over. */
  ended(t: Transfer, end: TransferEnd): void {
    if (!this.transfers.delete(t)) return;
    const n = (this.perClient.get(end.client.address) ?? 1) - 1;
    if (n) this.perClient.set(end.client.address, n);
    else this.perClient.delete(end.client.address);
    this.emit('transfer', end);
  }

  get options() {
    return this.opts;
  }
}

/** One read transfer, on its own socket. */
class Transfer {
  private socket?: Socket;
  private file?: TftpFile;
  private blksize = 512;
  private windowsize = 1;
  private timeoutMs: number;
  /** The timeout a retransmission starts from (the server's, or the client's `timeout` option). */
  private baseTimeoutMs: number;
  private blocks = 0;
  /** Next block the client has not acknowledged (1-based, absolute: no 16-bit wrap here). */
  private base = 1;
  /** Highest block sent so far. */
  private sent = 0;
  private retries = 0;
  private retransmits = 0;
  private timer?: NodeJS.Timeout;
  private waitingForOack = false;
  private oack?: Buffer;
  private cache?: { offset: number; data: Buffer };
  private readonly started = Date.now();
  private finished = false;
  private sending = false;
  /** An ACK moved the window while a window was being read: send again when that is done. */
  private again = false;

  constructor(
    private readonly server: TftpServer,
    private readonly client: TftpClient,
    private readonly filename: string,
    private readonly mode: 'octet' | 'netascii',
    private readonly requested: Record<string, string>,
  ) {
    this.timeoutMs = this.baseTimeoutMs = server.options.timeoutMs;
  }

  private get log() {
    return this.server.options.log;
  }

  async run(): Promise<void> {
    const socket = createSocket('udp4');
    this.socket = socket;
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'tftp transfer socket error'));
    await new Promise<void>((resolve) => socket.bind(0, this.server.options.address, () => resolve()));
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));

    try {
      this.file = await this.server.options.open(this.filename, this.client);
      if (this.mode === 'netascii') this.file = await netascii(this.file);
    } catch (err) {
      if (err instanceof TftpRefusal) {
        const code = err.code === 'access' ? TFTP_ERROR.ACCESS : TFTP_ERROR.NOT_FOUND;
        if (err.code === 'access') this.log.warn({ client: this.client.address, filename: this.filename, reason: err.message }, 'tftp access violation');
        else this.log.debug({ client: this.client.address, filename: this.filename }, 'tftp file not found');
        this.send(errorPacket(code, err.code === 'access' ? 'access violation' : 'file not found'));
      } else {
        this.log.error({ err: (err as Error).message, filename: this.filename }, 'tftp open failed');
        this.send(errorPacket(TFTP_ERROR.UNDEFINED, 'cannot read file'));
      }
      return this.end('read-error');
    }
    const accepted = this.negotiate();
    this.blocks = Math.floor(this.file.size / this.blksize) + 1;
    if (Object.keys(accepted).length) {
      this.oack = oackPacket(accepted);
      this.waitingForOack = true;
      this.send(this.oack);
      this.arm();
    } else {
      await this.sendWindow();
    }
  }

  /** The options this server accepts, with the values it will use (RFC 2347-2349, 7440). */
  private negotiate(): Record<string, number> {
    const o = this.server.options;
    const out: Record<string, number> = {};
    const num = (v: string | undefined) => (v !== undefined && /^\d{1,10}$/.test(v) ? Number(v) : NaN);
    const blksize = num(this.requested.blksize);
    if (blksize >= 8) out.blksize = this.blksize = Math.min(blksize, o.maxBlksize, 65464);
    const timeout = num(this.requested.timeout);
    if (timeout >= 1 && timeout <= 255) {
      out.timeout = timeout;
      this.timeoutMs = this.baseTimeoutMs = timeout * 1000;
    }
    if (num(this.requested.tsize) === 0) out.tsize = this.file!.size;
    const windowsize = num(this.requested.windowsize);
    if (windowsize >= 1 && windowsize <= 65535) out.windowsize = this.windowsize = Math.min(windowsize, o.maxWindowsize);
    return out;
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.finished) return;
    if (rinfo.address !== this.client.address || rinfo.port !== this.client.port) {
      // RFC 1350: a packet from another TID is answered with error 5 and changes nothing.
      if (parsePacket(msg)) this.socket?.send(errorPacket(TFTP_ERROR.UNKNOWN_TID, 'unknown transfer ID'), rinfo.port, rinfo.address);
      return;
    }
    const p = parsePacket(msg);
    if (!p) return;
    if (p.op === OP.ERROR) {
      this.log.debug({ client: this.client.address, code: p.code, message: p.message }, 'tftp client ended the transfer');
      return this.end('client-error');
    }
    if (p.op !== OP.ACK) return;
    if (this.waitingForOack) {
      if (p.block !== 0) return;
      this.waitingForOack = false;
      this.progress();
      void this.sendWindow();
      return;
    }
    // Only an ACK that moves the window forward counts; a duplicate or stale one is ignored.
    const acked = this.absolute(p.block);
    if (acked === null) return;
    this.progress();
    if (acked === this.blocks) return this.end('done');
    this.base = acked + 1;
    // An ACK inside the window means the client lost the block after it: the window restarts there.
    if (acked < this.sent || this.sent < this.base + this.windowsize - 1) void this.sendWindow();
  }

  /** The absolute block in [base, sent] whose 16-bit number the ACK carries, or null. */
  private absolute(block16: number): number | null {
    for (let b = this.sent; b >= this.base; b--) if ((b & 0xffff) === block16) return b;
    return null;
  }

  private progress(): void {
    this.retries = 0;
    this.timeoutMs = this.baseTimeoutMs;
  }

  private async block(n: number): Promise<Buffer> {
    const offset = (n - 1) * this.blksize;
    const length = Math.max(0, Math.min(this.blksize, this.file!.size - offset));
    if (!length) return Buffer.alloc(0);
    const c = this.cache;
    if (!c || offset < c.offset || offset + length > c.offset + c.data.length) {
      const want = Math.max(READ_CHUNK, this.blksize * this.windowsize);
      this.cache = { offset, data: await this.file!.read(offset, Math.min(want, this.file!.size - offset)) };
    }
    return this.cache!.data.subarray(offset - this.cache!.offset, offset - this.cache!.offset + length);
  }

  /** Sends blocks base … base+window-1 (those not past the end) and arms the timer. */
  private async sendWindow(): Promise<void> {
    if (this.finished) return;
    if (this.sending) {
      this.again = true;
      return;
    }
    this.sending = true;
    try {
      do {
        this.again = false;
        const last = Math.min(this.base + this.windowsize - 1, this.blocks);
        for (let b = this.base; b <= last && !this.finished && !this.again; b++) {
          this.send(dataPacket(b, await this.block(b)));
          if (b > this.sent) this.sent = b;
        }
      } while (this.again && !this.finished);
      this.arm();
    } catch (err) {
      this.log.error({ err: (err as Error).message, filename: this.filename }, 'tftp read failed');
      this.send(errorPacket(TFTP_ERROR.UNDEFINED, 'read error'));
      this.end('read-error');
    } finally {
      this.sending = false;
    }
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onTimeout(), this.timeoutMs);
  }

  private onTimeout(): void {
    if (this.finished) return;
    if (++this.retries > this.server.options.retries) {
      this.log.info({ client: this.client.address, filename: this.filename, block: this.base }, 'tftp transfer timed out');
      this.send(errorPacket(TFTP_ERROR.UNDEFINED, 'timeout'));
      return this.end('timeout');
    }
    this.retransmits++;
    this.timeoutMs = Math.min(this.timeoutMs * 2, MAX_BACKOFF_MS);
    if (this.waitingForOack) {
      this.send(this.oack!);
      this.arm();
    } else {
      void this.sendWindow();
    }
  }

  private send(packet: Buffer): void {
    this.socket?.send(packet, this.client.port, this.client.address);
  }

  abort(): void {
    this.end('timeout');
  }

  private end(outcome: TransferOutcome): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    const bytes = outcome === 'done' ? (this.file?.size ?? 0) : Math.max(0, (this.base - 1) * this.blksize);
    void this.file?.close().catch(() => undefined);
    // Let the last packet leave before the socket goes.
    setImmediate(() => this.socket?.close());
    this.server.ended(this, { client: this.client, filename: this.filename, outcome, bytes, ms: Date.now() - this.started, blksize: this.blksize, windowsize: this.windowsize, retransmits: this.retransmits });
  }
}

/** A file as netascii: read whole (netascii is for small text files), converted. */
async function netascii(file: TftpFile): Promise<TftpFile> {
  if (file.size > 4 * 1024 * 1024) {
    await file.close();
    throw new TftpRefusal('access', 'netascii only for files up to 4 MiB');
  }
  const data = toNetascii(await file.read(0, file.size));
  await file.close();
  return bufferFile(data);
}

export function bufferFile(data: Buffer): TftpFile {
  return { size: data.length, read: async (offset, length) => data.subarray(offset, offset + length), close: async () => undefined };
}
