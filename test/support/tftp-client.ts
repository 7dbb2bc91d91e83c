import { createSocket, type Socket } from 'node:dgram';
import { ackPacket, parsePacket, requestPacket, type TftpPacket } from '../../src/modules/boot/tftp/tftp-packet';

/**
 * A hand-driven TFTP client for the protocol's corner cases (lost blocks, duplicate ACKs, a client
 * that goes silent): it records every packet it gets, with the time, and sends what the test says.
 */
export class RawTftpClient {
  readonly socket: Socket;
  readonly got: { at: number; packet: TftpPacket | null; from: number }[] = [];
  private tid?: number;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('message', (msg, rinfo) => {
      this.tid ??= rinfo.port;
      this.got.push({ at: Date.now(), packet: parsePacket(msg), from: rinfo.port });
    });
  }

  static async open(): Promise<RawTftpClient> {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    return new RawTftpClient(s);
  }

  get port(): number {
    return this.socket.address().port;
  }

  request(port: number, filename: string, opts: Record<string, string | number> = {}, op: 1 | 2 = 1): void {
    this.socket.send(requestPacket(op, filename, 'octet', opts), port, '127.0.0.1');
  }

  raw(port: number, data: Buffer): void {
    this.socket.send(data, port, '127.0.0.1');
  }

  /** ACK to the transfer's own port (its TID). */
  ack(block: number): void {
    this.socket.send(ackPacket(block), this.tid!, '127.0.0.1');
  }

  get transferPort(): number | undefined {
    return this.tid;
  }

  data(block: number) {
    return this.got.filter((g) => g.packet?.op === 3 && g.packet.block === block);
  }

  error() {
    const e = this.got.find((g) => g.packet?.op === 5);
    return e?.packet?.op === 5 ? e.packet : undefined;
  }

  close(): void {
    this.socket.close();
  }
}
