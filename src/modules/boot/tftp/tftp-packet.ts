/**
 * TFTP packets (RFC 1350) with the option extension (RFC 2347). Parsing is strict: anything
 * that is not exactly a well-formed packet is `null`, and the server answers nothing to it.
 */
export const OP = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

/** RFC 1350 error codes (8: option negotiation refused, RFC 2347). */
export const TFTP_ERROR = { UNDEFINED: 0, NOT_FOUND: 1, ACCESS: 2, DISK_FULL: 3, ILLEGAL: 4, UNKNOWN_TID: 5, EXISTS: 6, NO_USER: 7, OPTIONS: 8 } as const;

export type TftpPacket =
  | { op: 1 | 2; filename: string; mode: 'octet' | 'netascii'; options: Record<string, string> }
  | { op: 3; block: number; data: Buffer }
  | { op: 4; block: number }
  | { op: 5; code: number; message: string }
  | { op: 6; options: Record<string, string> };

/** NUL-terminated strings from `offset` to the end; null unless the buffer ends with a NUL. */
function strings(buf: Buffer, offset: number): string[] | null {
  if (buf.length <= offset || buf[buf.length - 1] !== 0) return null;
  const out: string[] = [];
  let start = offset;
  for (let i = offset; i < buf.length; i++) {
    if (buf[i] !== 0) continue;
    out.push(buf.toString('latin1', start, i));
    start = i + 1;
  }
  return out;
}

function options(list: string[]): Record<string, string> | null {
  if (list.length % 2) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!.toLowerCase();
    if (!name || name in out) return null;
    out[name] = list[i + 1]!;
  }
  return out;
}

export function parsePacket(buf: Buffer): TftpPacket | null {
  if (buf.length < 4) return null;
  const op = buf.readUInt16BE(0);
  switch (op) {
    case OP.RRQ:
    case OP.WRQ: {
      const parts = strings(buf, 2);
      if (!parts || parts.length < 2 || !parts[0]) return null;
      const mode = parts[1]!.toLowerCase();
      if (mode !== 'octet' && mode !== 'netascii') return null;
      const opts = options(parts.slice(2));
      if (!opts) return null;
      return { op, filename: parts[0]!, mode, options: opts };
    }
    case OP.DATA:
      return { op, block: buf.readUInt16BE(2), data: buf.subarray(4) };
    case OP.ACK:
      return buf.length === 4 ? { op, block: buf.readUInt16BE(2) } : null;
    case OP.ERROR: {
      if (buf.length < 5 || buf[buf.length - 1] !== 0) return null;
      return { op, code: buf.readUInt16BE(2), message: buf.toString('latin1', 4, buf.length - 1) };
    }
    case OP.OACK: {
      const parts = strings(buf, 2);
      const opts = parts && options(parts);
      return opts ? { op, options: opts } : null;
    }
    default:
      return null;
  }
}

export function dataPacket(block: number, data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + data.length);
  out.writeUInt16BE(OP.DATA, 0);
  out.writeUInt16BE(block & 0xffff, 2);
  data.copy(out, 4);
  return out;
}

export function ackPacket(block: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt16BE(OP.ACK, 0);
  out.writeUInt16BE(block & 0xffff, 2);
  return out;
}

export function errorPacket(code: number, message: string): Buffer {
  return Buffer.concat([Buffer.from([0, OP.ERROR, 0, code]), Buffer.from(message, 'latin1'), Buffer.from([0])]);
}

export function oackPacket(opts: Record<string, string | number>): Buffer {
  const parts: Buffer[] = [Buffer.from([0, OP.OACK])];
  for (const [k, v] of Object.entries(opts)) parts.push(Buffer.from(`${k}\0${v}\0`, 'latin1'));
  return Buffer.concat(parts);
}

export function requestPacket(op: 1 | 2, filename: string, mode: string, opts: Record<string, string | number> = {}): Buffer {
  const body = [filename, mode, ...Object.entries(opts).flatMap(([k, v]) => [k, String(v)])].map((s) => `${s}\0`).join('');
  return Buffer.concat([Buffer.from([0, op]), Buffer.from(body, 'latin1')]);
}

/** netascii (RFC 764): CR LF for a newline, CR NUL for a bare CR. */
export function toNetascii(data: Buffer): Buffer {
  const out: number[] = [];
  for (const b of data) {
    if (b === 0x0a) out.push(0x0d, 0x0a);
    else if (b === 0x0d) out.push(0x0d, 0x00);
    else out.push(b);
  }
  return Buffer.from(out);
}
