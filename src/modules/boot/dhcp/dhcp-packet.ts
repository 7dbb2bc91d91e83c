/**
 * DHCP packets (RFC 2131) and their options (RFC 2132, PXE's from RFC 4578, iPXE's 175). Parsing
 * is strict: a packet that is short, lacks the magic cookie, has an option running past the end,
 * or is not an Ethernet DHCP message is `null`, and the server answers nothing to it.
 */
export const MSG = { DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8 } as const;
export type MessageType = (typeof MSG)[keyof typeof MSG];

export const OPT = {
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN: 15,
  VENDOR: 43,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMS: 55,
  MESSAGE: 56,
  RENEWAL: 58,
  REBINDING: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER: 66,
  BOOTFILE: 67,
  USER_CLASS: 77,
  CLIENT_ARCH: 93,
  CLIENT_NDI: 94,
  CLIENT_UUID: 97,
  IPXE: 175,
} as const;

const COOKIE = 0x63825363;
const HEADER = 236;
export const BROADCAST_FLAG = 0x8000;

export interface DhcpPacket {
  op: 1 | 2;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** Lower-case colon form, e.g. 52:54:00:12:34:56. */
  mac: string;
  sname: string;
  file: string;
  type: MessageType;
  options: Map<number, Buffer>;
}

const ip = (buf: Buffer, at: number) => `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
const cstring = (buf: Buffer) => {
  const end = buf.indexOf(0);
  return buf.toString('latin1', 0, end < 0 ? buf.length : end);
};

export function parseDhcp(buf: Buffer): DhcpPacket | null {
  if (buf.length < HEADER + 4) return null;
  const op = buf[0];
  if (op !== 1 && op !== 2) return null;
  if (buf[1] !== 1 || buf[2] !== 6) return null; // Ethernet, 6-byte addresses
  if (buf.readUInt32BE(HEADER) !== COOKIE) return null;
  const options = new Map<number, Buffer>();
  let at = HEADER + 4;
  let ended = false;
  while (at < buf.length) {
    const code = buf[at]!;
    if (code === 0) {
      at++;
      continue;
    }
    if (code === 255) {
      ended = true;
      break;
    }
    if (at + 1 >= buf.length) return null;
    const len = buf[at + 1]!;
    if (at + 2 + len > buf.length) return null;
    const value = buf.subarray(at + 2, at + 2 + len);
    // RFC 3396: a repeated option is one long option.
    options.set(code, options.has(code) ? Buffer.concat([options.get(code)!, value]) : value);
    at += 2 + len;
  }
  if (!ended) return null;
  const type = options.get(OPT.MESSAGE_TYPE);
  if (!type || type.length !== 1 || type[0]! < 1 || type[0]! > 8) return null;
  return {
    op,
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: ip(buf, 12),
    yiaddr: ip(buf, 16),
    siaddr: ip(buf, 20),
    giaddr: ip(buf, 24),
    mac: [...buf.subarray(28, 34)].map((b) => b.toString(16).padStart(2, '0')).join(':'),
    sname: cstring(buf.subarray(44, 108)),
    file: cstring(buf.subarray(108, 236)),
    type: type[0] as MessageType,
    options,
  };
}

/** Option values racksmith reads, decoded. */
export const read = {
  ip: (p: DhcpPacket, code: number): string | undefined => {
    const v = p.options.get(code);
    return v && v.length === 4 ? ip(v, 0) : undefined;
  },
  text: (p: DhcpPacket, code: number): string | undefined => p.options.get(code)?.toString('latin1'),
  /** Option 93: the first architecture type (0 BIOS, 6/7/9 UEFI IA32/x64/x64-HTTP, …). */
  arch: (p: DhcpPacket): number | undefined => {
    const v = p.options.get(OPT.CLIENT_ARCH);
    return v && v.length >= 2 && v.length % 2 === 0 ? v.readUInt16BE(0) : undefined;
  },
  /** Option 77: iPXE sends "iPXE" as is; RFC 3004 clients send length-prefixed classes. */
  userClasses: (p: DhcpPacket): string[] => {
    const v = p.options.get(OPT.USER_CLASS);
    if (!v?.length) return [];
    const out: string[] = [];
    let at = 0;
    while (at < v.length) {
      const len = v[at]!;
      if (!len || at + 1 + len > v.length) return [v.toString('latin1')];
      out.push(v.toString('latin1', at + 1, at + 1 + len));
      at += 1 + len;
    }
    return out;
  },
};

export interface Reply {
  /** 2 (a server's reply) unless given: tests build client messages with 1. */
  op?: 1 | 2;
  type: MessageType;
  xid: number;
  flags: number;
  mac: string;
  ciaddr?: string;
  yiaddr?: string;
  siaddr?: string;
  giaddr?: string;
  sname?: string;
  file?: string;
  /** In the order given; 53 (message type) goes first by itself. */
  options: [number, Buffer][];
}

const ipBytes = (a: string | undefined) => Buffer.from((a ?? '0.0.0.0').split('.').map(Number));

export function encodeDhcp(r: Reply): Buffer {
  const head = Buffer.alloc(HEADER + 4);
  head[0] = r.op ?? 2;
  head[1] = 1;
  head[2] = 6;
  head.writeUInt32BE(r.xid >>> 0, 4);
  head.writeUInt16BE(r.flags & BROADCAST_FLAG, 10);
  ipBytes(r.ciaddr).copy(head, 12);
  ipBytes(r.yiaddr).copy(head, 16);
  ipBytes(r.siaddr).copy(head, 20);
  ipBytes(r.giaddr).copy(head, 24);
  Buffer.from(r.mac.split(':').map((h) => parseInt(h, 16))).copy(head, 28);
  if (r.sname) head.write(r.sname.slice(0, 63), 44, 'latin1');
  if (r.file) head.write(r.file.slice(0, 127), 108, 'latin1');
  head.writeUInt32BE(COOKIE, HEADER);
  const parts: Buffer[] = [head, Buffer.from([OPT.MESSAGE_TYPE, 1, r.type])];
  for (const [code, value] of r.options) {
    // Values over 255 bytes are split into several options (RFC 3396).
    for (let at = 0; at < value.length || at === 0; at += 255) {
      const piece = value.subarray(at, at + 255);
      parts.push(Buffer.from([code, piece.length]), piece);
      if (value.length === 0) break;
    }
  }
  parts.push(Buffer.from([255]));
  const out = Buffer.concat(parts);
  // BOOTP relays and old PXE ROMs want at least 300 bytes.
  return out.length >= 300 ? out : Buffer.concat([out, Buffer.alloc(300 - out.length)]);
}

export const opt = {
  ip: (a: string) => ipBytes(a),
  ips: (list: string[]) => Buffer.concat(list.map(ipBytes)),
  u32: (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  },
  text: (s: string) => Buffer.from(s, 'latin1'),
  /** Encapsulated options (43, 175): code, length, value …, 255. */
  sub: (list: [number, Buffer][]) => Buffer.concat([...list.flatMap(([c, v]) => [Buffer.from([c, v.length]), v]), Buffer.from([255])]),
};
