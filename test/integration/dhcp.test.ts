import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import pino from 'pino';
import { encodeDhcp, MSG, opt, OPT, parseDhcp, read, type DhcpPacket } from '../../src/modules/boot/dhcp/dhcp-packet';
import { DhcpServer, type BootMilestone, type BootTarget, type DhcpBackend } from '../../src/modules/boot/dhcp/dhcp-server';
import { freeUdpPort } from '../support/ipmi-sim';
import { until } from '../support/wait';

jest.setTimeout(30_000);

/** A DHCP client on loopback: broadcast replies reach it because the server's broadcast address is 127.0.0.1. */
class Client {
  readonly got: { packet: DhcpPacket | null; fromPort: number }[] = [];
  private constructor(readonly socket: Socket) {
    socket.on('message', (m, r) => this.got.push({ packet: parseDhcp(m), fromPort: r.port }));
  }
  /** `address`: 0.0.0.0 to also get what is unicast to a leased loopback address. */
  static async open(address = '127.0.0.1'): Promise<Client> {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, address, () => r()));
    return new Client(s);
  }
  get port() {
    return this.socket.address().port;
  }
  send(port: number, type: number, mac: string, extra: { options?: [number, Buffer][]; ciaddr?: string; giaddr?: string; xid?: number } = {}) {
    const xid = extra.xid ?? randomBytes(4).readUInt32BE();
    this.socket.send(encodeDhcp({ op: 1, type: type as never, xid, flags: 0, mac, ciaddr: extra.ciaddr, giaddr: extra.giaddr, options: extra.options ?? [] }), port, '127.0.0.1');
    return xid;
  }
  replies(xid: number) {
    return this.got.filter((g) => g.packet?.xid === xid).map((g) => g.packet!);
  }
  close() {
    this.socket.close();
  }
}

const PXE_BIOS: [number, Buffer][] = [[OPT.VENDOR_CLASS, opt.text('PXEClient:Arch:00000:UNDI:002001')], [OPT.CLIENT_ARCH, Buffer.from([0, 0])], [OPT.CLIENT_UUID, Buffer.concat([Buffer.from([0]), randomBytes(16)])]];
const PXE_UEFI: [number, Buffer][] = [[OPT.VENDOR_CLASS, opt.text('PXEClient:Arch:00007:UNDI:003016')], [OPT.CLIENT_ARCH, Buffer.from([0, 7])]];
const IPXE: [number, Buffer][] = [[OPT.USER_CLASS, opt.text('iPXE')], [OPT.IPXE, Buffer.from([19, 1, 1])], ...PXE_BIOS];

const network = { id: 'net-1', cidr: '127.0.0.0/8', gateway: '127.0.0.254', dns: ['127.0.0.53'], domain: 'prov.example', leaseSeconds: 600 };
const targets: Record<string, BootTarget> = {
  '52:54:00:00:00:01': { serverId: 's1', name: 'rs-001', action: 'install', reservation: { ip: '127.0.10.1', network } },
  '52:54:00:00:00:02': { serverId: 's2', name: 'rs-002', action: 'local', reservation: { ip: '127.0.10.2', network } },
  '52:54:00:00:00:03': { serverId: 's3', name: 'rs-003', action: 'install', reservation: { ip: '10.99.0.3', network: { ...network, id: 'net-2', cidr: '10.99.0.0/24' } } },
  '52:54:00:00:00:04': { serverId: 's4', name: 'rs-004', action: 'install', reservation: { ip: '127.0.2.40', network: { ...network, id: 'net-3', cidr: '127.0.2.0/24' } } },
};
const leases: Parameters<DhcpBackend['lease']>[0][] = [];
const unknown: string[] = [];
const backend: DhcpBackend = {
  target: async (mac) => targets[mac] ?? null,
  lease: async (e) => void leases.push(e),
  unknown: async (mac) => void unknown.push(mac),
};

async function server(mode: 'proxy' | 'authoritative', clientPort: number) {
  const s = new DhcpServer({ mode, bindAddress: '127.0.0.1', serverAddress: '127.0.0.1', port: await freeUdpPort(), proxyPort: await freeUdpPort(), broadcastAddress: '127.0.0.1', clientPort, httpBase: 'http://127.0.0.1:8080', backend, log: pino({ level: 'silent' }) });
  const ports = await s.start();
  const milestones: BootMilestone[] = [];
  s.on('milestone', (m: BootMilestone) => milestones.push(m));
  return { s, ports, milestones };
}

const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

describe('DHCP server', () => {
  it('proxyDHCP: a PXE client gets an OFFER without an address and the loader for its arch; the boot file again on 4011; iPXE gets its script URL', async () => {
    const c = await Client.open();
    const { s, ports, milestones } = await server('proxy', c.port);
    cleanup.push(() => s.stop(), () => c.close());

    const x = c.send(ports.port, MSG.DISCOVER, '52:54:00:00:00:01', { options: PXE_BIOS });
    await until(async () => c.replies(x), (r) => r.length === 1, 3000);
    const offer = c.replies(x)[0]!;
    expect(offer.type).toBe(MSG.OFFER);
    expect(offer.yiaddr).toBe('0.0.0.0');
    expect(offer.siaddr).toBe('127.0.0.1');
    expect(offer.file).toBe('undionly.kpxe');
    expect(read.text(offer, OPT.VENDOR_CLASS)).toBe('PXEClient');
    expect(read.ip(offer, OPT.SERVER_ID)).toBe('127.0.0.1');
    expect(offer.options.get(OPT.CLIENT_UUID)).toEqual(PXE_BIOS[2]![1]);
    expect(offer.options.get(OPT.VENDOR)).toEqual(Buffer.from([6, 1, 8, 255]));

    const u = c.send(ports.port, MSG.DISCOVER, '52:54:00:00:00:01', { options: PXE_UEFI });
    await until(async () => c.replies(u), (r) => r.length === 1, 3000);
    expect(c.replies(u)[0]!.file).toBe('snponly.efi');

    const q = c.send(ports.proxyPort!, MSG.REQUEST, '52:54:00:00:00:01', { options: PXE_BIOS, ciaddr: '127.0.0.1' });
    await until(async () => c.replies(q), (r) => r.length === 1, 3000);
    expect(c.got.find((g) => g.packet?.xid === q)!.fromPort).toBe(ports.proxyPort);
    expect(c.replies(q)[0]).toMatchObject({ type: MSG.ACK, file: 'undionly.kpxe' });

    const i = c.send(ports.port, MSG.DISCOVER, '52:54:00:00:00:02', { options: IPXE });
    await until(async () => c.replies(i), (r) => r.length === 1, 3000);
    const ipxeOffer = c.replies(i)[0]!;
    expect(ipxeOffer.file).toBe('http://127.0.0.1:8080/boot/ipxe/52:54:00:00:00:02');
    expect(ipxeOffer.options.get(OPT.IPXE)).toEqual(Buffer.from([176, 1, 1, 255]));
    expect(milestones.map((m) => `${m.event} ${m.client} ${m.file}`)).toEqual(['offer pxe undionly.kpxe', 'offer pxe snponly.efi', 'ack pxe undionly.kpxe', 'offer ipxe http://127.0.0.1:8080/boot/ipxe/52:54:00:00:00:02']);
  });

  it('proxyDHCP: an unknown MAC and a client that does not network-boot get nothing', async () => {
    const c = await Client.open();
    const { s, ports } = await server('proxy', c.port);
    cleanup.push(() => s.stop(), () => c.close());
    const a = c.send(ports.port, MSG.DISCOVER, '52:54:00:99:99:99', { options: PXE_BIOS });
    const b = c.send(ports.port, MSG.DISCOVER, '52:54:00:00:00:01'); // a plain DHCP client
    await new Promise((r) => setTimeout(r, 300));
    expect(c.replies(a)).toEqual([]);
    expect(c.replies(b)).toEqual([]);
    expect(unknown).toContain('52:54:00:99:99:99');
  });

  it('authoritative: OFFER and ACK of the reservation with the network options, NAK for another address, REQUEST for another server ignored, RELEASE and DECLINE recorded', async () => {
    const c = await Client.open('0.0.0.0');
    const { s, ports } = await server('authoritative', c.port);
    cleanup.push(() => s.stop(), () => c.close());
    const mac = '52:54:00:00:00:01';
    const d = c.send(ports.port, MSG.DISCOVER, mac, { options: PXE_BIOS });
    await until(async () => c.replies(d), (r) => r.length === 1, 3000);
    const offer = c.replies(d)[0]!;
    expect(offer).toMatchObject({ type: MSG.OFFER, yiaddr: '127.0.10.1', file: 'undionly.kpxe', siaddr: '127.0.0.1' });
    expect(offer.flags & 0x8000).toBe(0x8000);
    expect(read.ip(offer, OPT.SUBNET_MASK)).toBe('255.0.0.0');
    expect(read.ip(offer, OPT.ROUTER)).toBe('127.0.0.254');
    expect(read.ip(offer, OPT.DNS)).toBe('127.0.0.53');
    expect(read.text(offer, OPT.HOSTNAME)).toBe('rs-001');
    expect(offer.options.get(OPT.LEASE_TIME)!.readUInt32BE()).toBe(600);

    const other = c.send(ports.port, MSG.REQUEST, mac, { options: [[OPT.SERVER_ID, opt.ip('127.0.0.99')], [OPT.REQUESTED_IP, opt.ip('127.0.10.1')]] });
    const ok = c.send(ports.port, MSG.REQUEST, mac, { options: [[OPT.SERVER_ID, opt.ip('127.0.0.1')], [OPT.REQUESTED_IP, opt.ip('127.0.10.1')], ...PXE_BIOS] });
    const wrong = c.send(ports.port, MSG.REQUEST, mac, { options: [[OPT.REQUESTED_IP, opt.ip('127.0.10.77')]] });
    await until(async () => [c.replies(ok), c.replies(wrong)], ([a, b]) => a!.length === 1 && b!.length === 1, 3000);
    expect(c.replies(other)).toEqual([]);
    expect(c.replies(ok)[0]).toMatchObject({ type: MSG.ACK, yiaddr: '127.0.10.1' });
    expect(c.replies(wrong)[0]!.type).toBe(MSG.NAK);
    expect(read.text(c.replies(wrong)[0]!, OPT.MESSAGE)).toMatch(/127\.0\.10\.77/);

    // Renewing: ciaddr set, unicast back to it.
    const renew = c.send(ports.port, MSG.REQUEST, mac, { ciaddr: '127.0.10.1' });
    await until(async () => c.replies(renew), (r) => r.length === 1, 3000);
    expect(c.replies(renew)[0]!.type).toBe(MSG.ACK);

    c.send(ports.port, MSG.DECLINE, mac, { options: [[OPT.SERVER_ID, opt.ip('127.0.0.1')], [OPT.REQUESTED_IP, opt.ip('127.0.10.1')]] });
    c.send(ports.port, MSG.RELEASE, mac, { ciaddr: '127.0.10.1', options: [[OPT.SERVER_ID, opt.ip('127.0.0.1')]] });
    await until(async () => leases.map((l) => l.state), (l) => l.includes('released') && l.includes('declined'), 3000);
    expect(leases.filter((l) => l.mac === mac).map((l) => l.state)).toEqual(['bound', 'bound', 'declined', 'released']);
  });

  it('authoritative: a relayed request is answered to the relay (giaddr) on the server port; one from another network gets nothing', async () => {
    const c = await Client.open();
    const { s, ports } = await server('authoritative', c.port);
    // The relay agent: 127.0.2.1 on the server port (the server itself holds that port on 127.0.0.1 only).
    const relay = createSocket('udp4');
    const relayed: DhcpPacket[] = [];
    relay.on('message', (m) => relayed.push(parseDhcp(m)!));
    await new Promise<void>((r) => relay.bind(ports.port, '127.0.2.1', () => r()));
    cleanup.push(() => s.stop(), () => c.close(), () => relay.close());
    const x = c.send(ports.port, MSG.DISCOVER, '52:54:00:00:00:04', { giaddr: '127.0.2.1', options: PXE_BIOS });
    await until(async () => relayed, (r) => r.length === 1, 3000);
    expect(relayed[0]).toMatchObject({ xid: x, type: MSG.OFFER, yiaddr: '127.0.2.40', giaddr: '127.0.2.1' });
    expect(c.replies(x)).toEqual([]);
    const y = c.send(ports.port, MSG.DISCOVER, '52:54:00:00:00:03', { options: PXE_BIOS }); // not relayed, and not this network
    await new Promise((res) => setTimeout(res, 300));
    expect(c.replies(y)).toEqual([]);
  });

  it('thousands of random and truncated packets crash nothing and get no answer', async () => {
    const c = await Client.open();
    const { s, ports } = await server('proxy', c.port);
    cleanup.push(() => s.stop(), () => c.close());
    const valid = encodeDhcp({ op: 1, type: MSG.DISCOVER, xid: 7, flags: 0, mac: '52:54:00:00:00:01', options: PXE_BIOS });
    const end = valid.lastIndexOf(255);
    for (let i = 0; i < 3000; i++) {
      const kind = i % 3;
      // Truncated: anywhere before the end option; or a valid header with random options.
      const p = kind === 0 ? randomBytes(1 + (i % 700)) : kind === 1 ? valid.subarray(0, i % end) : Buffer.concat([valid.subarray(0, 240), randomBytes(i % 60)]);
      c.socket.send(p, i % 2 ? ports.port : ports.proxyPort!, '127.0.0.1');
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(c.got).toHaveLength(0);
    const x = c.send(ports.port, MSG.DISCOVER, '52:54:00:00:00:01', { options: PXE_BIOS });
    await until(async () => c.replies(x), (r) => r.length === 1, 3000);
  });
});
