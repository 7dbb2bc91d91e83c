import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { roomForStorms } from '../udp-buffers';
import { loadNativeSender, type NativeSender, type NativeTransfer, type NativeTransferResult } from './native-sender';
import { errorPacket, oackPacket, OP, parsePacket, TFTP_ERROR, toNetascii } from './tftp-packet';

/** What a transfer reads: a size and ranges of bytes. */
export interface TftpFile {
  size: number;
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
  /** The bytes when they are in memory, or the open file's descriptor: the native sender reads these. */
  data?: Buffer;
  fd?: number;
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
  /**
   * Who sends the blocks: `native` (a thread per transfer in C, built by `npm install`), `js` (the
   * event loop), or `auto` (native when it is built). Both follow the same rules.
   */
  sender?: 'auto' | 'native' | 'js';
  /** Native sender: microseconds a transfer spins for an ACK before it sleeps (0: never). */
  spinUs?: number;
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
 * storm. Malformed packets get no answer; a stray sender's packets never reach a transfer (its
 * socket is connected to the client). Emits `transfer` (TransferEnd) when a transfer ends.
 */
export class TftpServer extends EventEmitter {
  private socket?: Socket;
  private readonly transfers = new Set<Transfer>();
  private readonly perClient = new Map<string, number>();
  private readonly opts: Required<Omit<TftpServerOptions, 'log' | 'open'>> & Pick<TftpServerOptions, 'log' | 'open'>;
  /** The native sender, when it sends this server's blocks. */
  readonly native: NativeSender | null;

  constructor(opts: TftpServerOptions) {
    super();
    this.opts = { maxBlksize: 65464, maxWindowsize: 64, timeoutMs: 1000, retries: 5, maxTransfers: 1000, maxPerClient: 16, sender: 'auto', spinUs: 50, ...opts };
    const { sender, error } = this.opts.sender === 'js' ? { sender: null } : loadNativeSender();
    if (!sender && this.opts.sender === 'native') throw new Error(`the native TFTP sender is not built (npm install builds it with make and a C compiler): ${error}`);
    this.native = sender;
  }

  /** Which sender sends the blocks. */
  get sender(): 'native' | 'js' {
    return this.native ? 'native' : 'js';
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
        roomForStorms(socket);
        resolve();
      });
    });
    this.socket = socket;
    const a = socket.address();
    return { address: a.address, port: a.port };
  }

  async stop(): Promise<void> {
    for (const t of [...this.transfers]) t.abort();
    // Native transfers end on their own thread: wait until each has handed back its result.
    if (this.transfers.size) await new Promise<void>((r) => this.once('idle', r));
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
    if (!this.transfers.size) this.emit('idle');
  }

  get options() {
    return this.opts;
  }
}

/**
 * One read transfer, on its own socket connected to the client (its TID): the kernel hands it
 * only that client's packets. The native sender runs the data phase on a thread of its own;
 * otherwise it runs here: the hot path (ACK in, DATA out) is synchronous while the blocks are in
 * memory, and the file is read in chunks ahead of the window.
 */
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
  /** Next block to send, and the highest sent so far. */
  private next = 1;
  private sent = 0;
  private retries = 0;
  private retransmits = 0;
  private timer?: NodeJS.Timeout;
  /** When the window last moved (or was last sent): the timer fires timeoutMs after it. */
  private lastSend = 0;
  private waitingForOack = false;
  private oack?: Buffer;
  private chunk?: { offset: number; data: Buffer };
  private reading = false;
  private readonly started = Date.now();
  private finished = false;
  private native?: NativeTransfer;

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

  /** This transfer's own socket (its TID), connected to the client. */
  private async openSocket(): Promise<void> {
    const socket = createSocket('udp4');
    this.socket = socket;
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'tftp transfer socket error'));
    await new Promise<void>((resolve) => socket.bind(0, this.server.options.address, () => resolve()));
    await new Promise<void>((resolve) => socket.connect(this.client.port, this.client.address, () => resolve()));
    socket.on('message', (msg) => this.onMessage(msg));
  }

  async run(): Promise<void> {
    try {
      this.file = await this.server.options.open(this.filename, this.client);
      if (this.mode === 'netascii') this.file = await netascii(this.file);
    } catch (err) {
      await this.openSocket();
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
    if (this.finished) return void this.file.close().catch(() => undefined); // stopped while opening
    const accepted = this.negotiate();
    this.blocks = Math.floor(this.file.size / this.blksize) + 1;
    const native = this.server.native;
    if (native && (this.file.data || this.file.fd !== undefined) && this.runNative(native, accepted)) return;
    await this.openSocket();
    this.lastSend = Date.now();
    this.timer = setTimeout(() => this.onTimer(), this.timeoutMs);
    if (Object.keys(accepted).length) {
      this.oack = oackPacket(accepted);
      this.waitingForOack = true;
      this.send(this.oack);
    } else {
      this.pump();
    }
  }

  /**
   * The data phase on the native sender's thread; it calls back once, when the transfer is over.
   * False when it could not start (no socket or thread): the transfer then runs here.
   */
  private runNative(native: NativeSender, accepted: Record<string, number>): boolean {
    const o = this.server.options;
    const file = this.file!;
    const done = (r: NativeTransferResult) => {
      this.native = undefined;
      this.retransmits = r.retransmits;
      this.base = r.acked + 1;
      if (r.outcome === 'timeout') this.log.info({ client: this.client.address, filename: this.filename, block: this.base }, 'tftp transfer timed out');
      if (r.outcome === 'read-error') this.log.error({ filename: this.filename }, 'tftp read failed');
      if (r.outcome === 'client-error') this.log.debug({ client: this.client.address }, 'tftp client ended the transfer');
      this.end(r.outcome === 'aborted' ? 'timeout' : r.outcome);
    };
    try {
      this.native = native.start(
        {
          bindAddress: o.address,
          clientAddress: this.client.address,
          clientPort: this.client.port,
          ...(file.data ? { data: file.data } : { fd: file.fd }),
          size: file.size,
          blksize: this.blksize,
          windowsize: this.windowsize,
          timeoutMs: this.baseTimeoutMs,
          maxBackoffMs: MAX_BACKOFF_MS,
          retries: o.retries,
          spinUs: o.spinUs,
          ...(Object.keys(accepted).length ? { oack: oackPacket(accepted) } : {}),
          timeoutPacket: TIMEOUT_PACKET,
          readErrorPacket: READ_ERROR_PACKET,
        },
        done,
      );
      return true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message, client: this.client.address }, 'tftp native sender could not start; sending from JavaScript');
      return false;
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

  private onMessage(msg: Buffer): void {
    if (this.finished || msg.length < 4) return;
    const op = msg.readUInt16BE(0);
    if (op === OP.ACK && msg.length === 4) return this.onAck(msg.readUInt16BE(2));
    const p = parsePacket(msg);
    if (p?.op === OP.ERROR) {
      this.log.debug({ client: this.client.address, code: p.code, message: p.message }, 'tftp client ended the transfer');
      this.end('client-error');
    }
  }

  private onAck(block16: number): void {
    if (this.waitingForOack) {
      if (block16 !== 0) return;
      this.waitingForOack = false;
      this.progress();
      return this.pump();
    }
    // Only an ACK that moves the window forward counts; a duplicate or stale one is ignored.
    const acked = this.absolute(block16);
    if (acked === null) return;
    this.progress();
    if (acked === this.blocks) return this.end('done');
    this.base = acked + 1;
    // An ACK inside the window means the client lost the block after it: restart there (RFC 7440).
    if (acked < this.sent) this.next = this.base;
    else if (this.next < this.base) this.next = this.base;
    this.pump();
  }

  /** The absolute block in [base, sent] whose 16-bit number the ACK carries, or null. */
  private absolute(block16: number): number | null {
    for (let b = this.sent; b >= this.base; b--) if ((b & 0xffff) === block16) return b;
    return null;
  }

  private progress(): void {
    this.retries = 0;
    if (this.timeoutMs === this.baseTimeoutMs) return;
    // Backed off before: the next wait is the base timeout again.
    this.timeoutMs = this.baseTimeoutMs;
  }

  /** Block n's bytes if they are in memory, else undefined. */
  private inMemory(n: number): Buffer | undefined {
    const offset = (n - 1) * this.blksize;
    const length = Math.max(0, Math.min(this.blksize, this.file!.size - offset));
    if (!length) return EMPTY;
    const c = this.chunk;
    if (!c || offset < c.offset || offset + length > c.offset + c.data.length) return undefined;
    return c.data.subarray(offset - c.offset, offset - c.offset + length);
  }

  /** Reads the chunk of the file that starts at block n (a window's worth at least). */
  private async fill(n: number): Promise<void> {
    const offset = (n - 1) * this.blksize;
    const want = Math.max(READ_CHUNK, this.blksize * this.windowsize);
    this.chunk = { offset, data: await this.file!.read(offset, Math.min(want, this.file!.size - offset)) };
  }

  /** Sends the window's blocks from `next` on, reading ahead when they are not in memory. */
  private pump(): void {
    if (this.finished || this.reading) return;
    const last = Math.min(this.base + this.windowsize - 1, this.blocks);
    while (this.next <= last) {
      const data = this.inMemory(this.next);
      if (!data) {
        this.reading = true;
        this.fill(this.next).then(
          () => {
            this.reading = false;
            this.pump();
          },
          (err: Error) => {
            this.log.error({ err: err.message, filename: this.filename }, 'tftp read failed');
            this.send(READ_ERROR_PACKET);
            this.end('read-error');
          },
        );
        return;
      }
      const packet = Buffer.allocUnsafe(4 + data.length);
      packet[0] = 0;
      packet[1] = OP.DATA;
      packet.writeUInt16BE(this.next & 0xffff, 2);
      data.copy(packet, 4);
      this.socket!.send(packet);
      if (this.next > this.sent) this.sent = this.next;
      this.next++;
    }
    // Not a timer re-arm per packet (that costs more than the send): the timer looks at this.
    this.lastSend = Date.now();
  }

  /** The retransmission timer: fires, and retransmits only if nothing moved for timeoutMs. */
  private onTimer(): void {
    if (this.finished) return;
    const due = this.lastSend + this.timeoutMs - Date.now();
    if (due > 0) {
      this.timer = setTimeout(() => this.onTimer(), due);
      return;
    }
    this.onTimeout();
  }

  private onTimeout(): void {
    if (++this.retries > this.server.options.retries) {
      this.log.info({ client: this.client.address, filename: this.filename, block: this.base }, 'tftp transfer timed out');
      this.send(TIMEOUT_PACKET);
      return this.end('timeout');
    }
    this.retransmits++;
    this.timeoutMs = Math.min(this.timeoutMs * 2, MAX_BACKOFF_MS);
    this.lastSend = Date.now();
    this.timer = setTimeout(() => this.onTimer(), this.timeoutMs);
    if (this.waitingForOack) return this.send(this.oack!);
    this.next = this.base;
    this.pump();
  }

  private send(packet: Buffer): void {
    this.socket?.send(packet);
  }

  abort(): void {
    // A native transfer ends when its thread has stopped (its callback ends it here).
    if (this.native) return this.server.native!.abort(this.native);
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

const EMPTY = Buffer.alloc(0);
const TIMEOUT_PACKET = errorPacket(TFTP_ERROR.UNDEFINED, 'timeout');
const READ_ERROR_PACKET = errorPacket(TFTP_ERROR.UNDEFINED, 'read error');

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
  return { size: data.length, data, read: async (offset, length) => data.subarray(offset, offset + length), close: async () => undefined };
}
