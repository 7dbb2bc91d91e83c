import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { BROADCAST_FLAG, encodeDhcp, MSG, opt, OPT, parseDhcp, read, type DhcpPacket, type Reply } from './dhcp-packet';
import { roomForStorms } from '../udp-buffers';

/** A provisioning network racksmith answers for in authoritative mode. */
export interface BootNetwork {
  id: string;
  /** e.g. 10.77.0.0/24 */
  cidr: string;
  gateway: string | null;
  dns: string[];
  domain: string | null;
  leaseSeconds: number;
}

/** What racksmith knows of a MAC: whose it is, whether it installs now, its reserved address. */
export interface BootTarget {
  serverId: string;
  name: string;
  /** install: the boot chain into the installer; local: iPXE is told to boot from disk. */
  action: 'install' | 'local';
  reservation: { ip: string; network: BootNetwork } | null;
  /** The job waiting for this machine to boot (install or wipe): milestones go to its log. */
  jobId?: string;
}

export interface DhcpBackend {
  /** null: an unknown MAC; it gets no answer. */
  target(mac: string): Promise<BootTarget | null>;
  /** Authoritative mode: the client took (ACK) or gave back (RELEASE, DECLINE) its address. */
  lease(event: { mac: string; ip: string; networkId: string; state: 'bound' | 'released' | 'declined'; seconds: number; serverId: string }): Promise<void>;
  /** An unknown MAC asked to boot (for discovery, when enabled). */
  unknown?(mac: string, info: { arch?: number; vendorClass?: string }): Promise<void>;
}

export interface DhcpServerOptions {
  mode: 'proxy' | 'authoritative';
  /** Address to bind (0.0.0.0 to receive broadcasts) and this server's own address (its identifier). */
  bindAddress: string;
  serverAddress: string;
  port: number;
  /** proxyDHCP's second port (PXE clients ask it for the boot file there). */
  proxyPort: number;
  /** Where broadcast replies go (255.255.255.255; a test on loopback sets 127.0.0.1) and the client port. */
  broadcastAddress: string;
  clientPort: number;
  /** Base URL iPXE fetches its script from, e.g. http://10.77.0.1:8080 (the script path is added). */
  httpBase: string;
  backend: DhcpBackend;
  log: Logger;
}

/** ip: the client's address when the answer names one (its lease, or ciaddr on 4011). */
export type BootMilestone = { mac: string; serverId: string; jobId?: string; event: 'offer' | 'ack'; file: string; client: 'pxe' | 'ipxe'; ip?: string };

/** PXE loaders from Debian's ipxe package by client architecture (RFC 4578 option 93). */
const LOADER: Record<number, string> = { 0: 'undionly.kpxe', 7: 'snponly.efi', 9: 'snponly.efi' };

function mask(cidr: string): string {
  const bits = Number(cidr.split('/')[1]);
  const m = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 255).join('.');
}

export function inCidr(ip: string, cidr: string): boolean {
  const [net, bits] = cidr.split('/');
  const n = (a: string) => a.split('.').reduce((acc, x) => (acc << 8) + Number(x), 0) >>> 0;
  const m = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
  return ((n(ip) & m) >>> 0) === ((n(net!) & m) >>> 0);
}

/**
 * racksmith's DHCP server. proxyDHCP (default): coexists with the data center's DHCP server and
 * gives PXE clients boot information only (OFFER on 67 without an address, ACK on 4011).
 * Authoritative: hands out the reserved addresses of known servers on provisioning networks,
 * with the server-identifier check, NAK, RELEASE, DECLINE and relay agents (giaddr).
 * Per MAC: a server with a pending install gets the boot chain, any other known server is told to
 * boot from its disk, an unknown MAC gets nothing. Malformed packets get no answer. Emits
 * `milestone` (BootMilestone) for the install job's log.
 */
export class DhcpServer extends EventEmitter {
  private sockets: Socket[] = [];

  constructor(private readonly o: DhcpServerOptions) {
    super();
  }

  async start(): Promise<{ port: number; proxyPort?: number }> {
    const main = await this.bind(this.o.port, (msg, r) => this.onPacket(msg, r, 'main'));
    const out: { port: number; proxyPort?: number } = { port: main.address().port };
    if (this.o.mode === 'proxy') {
      const proxy = await this.bind(this.o.proxyPort, (msg, r) => this.onPacket(msg, r, 'proxy'));
      out.proxyPort = proxy.address().port;
    }
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all(this.sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.sockets = [];
  }

  private async bind(port: number, onMessage: (msg: Buffer, r: RemoteInfo) => void): Promise<Socket> {
    const s = createSocket({ type: 'udp4', reuseAddr: true });
    s.on('error', (err) => this.o.log.error({ err: err.message }, 'dhcp socket error'));
    s.on('message', (msg, r) => {
      void Promise.resolve()
        .then(() => onMessage(msg, r))
        .catch((err: Error) => this.o.log.error({ err: err.message, client: r.address }, 'dhcp request failed'));
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, this.o.bindAddress, () => {
        s.off('error', reject);
        s.setBroadcast(true);
        roomForStorms(s);
        resolve();
      });
    });
    this.sockets.push(s);
    return s;
  }

  private async onPacket(msg: Buffer, rinfo: RemoteInfo, on: 'main' | 'proxy'): Promise<void> {
    const p = parseDhcp(msg);
    if (!p || p.op !== 1) return; // not a client's DHCP message: no answer
    const target = await this.o.backend.target(p.mac);
    const pxe = read.text(p, OPT.VENDOR_CLASS)?.startsWith('PXEClient') ?? false;
    const ipxe = p.options.has(OPT.IPXE) || read.userClasses(p).includes('iPXE');
    if (!target) {
      if (pxe || ipxe) await this.o.backend.unknown?.(p.mac, { arch: read.arch(p), vendorClass: read.text(p, OPT.VENDOR_CLASS) });
      this.o.log.debug({ mac: p.mac, type: p.type }, 'dhcp: unknown MAC, no answer');
      return;
    }
    if (this.o.mode === 'proxy') return this.proxy(p, target, rinfo, on, pxe, ipxe);
    return this.authoritative(p, target, rinfo, pxe, ipxe);
  }

  /** The boot file for this client, or null when it cannot be booted (an unsupported arch). */
  private bootFile(p: DhcpPacket, target: BootTarget, ipxe: boolean): { file: string; client: 'pxe' | 'ipxe' } | null {
    if (ipxe) return { file: `${this.o.httpBase}/boot/ipxe/${p.mac}`, client: 'ipxe' };
    const arch = read.arch(p) ?? 0;
    const loader = LOADER[arch];
    if (!loader) {
      this.o.log.warn({ mac: p.mac, server: target.name, arch }, 'dhcp: no loader for this client architecture');
      return null;
    }
    return { file: loader, client: 'pxe' };
  }

  /** Boot options: next server, file, and for iPXE "don't wait for proxyDHCP" (175.176). */
  private bootOptions(boot: { file: string; client: 'pxe' | 'ipxe' }): [number, Buffer][] {
    const out: [number, Buffer][] = [
      [OPT.TFTP_SERVER, opt.text(this.o.serverAddress)],
      [OPT.BOOTFILE, opt.text(boot.file)],
    ];
    if (boot.client === 'ipxe') out.push([OPT.IPXE, opt.sub([[176, Buffer.from([1])]])]);
    return out;
  }

  private async proxy(p: DhcpPacket, target: BootTarget, rinfo: RemoteInfo, on: 'main' | 'proxy', pxe: boolean, ipxe: boolean): Promise<void> {
    if (!pxe && !ipxe) return; // proxyDHCP answers network-boot clients only
    const isDiscover = on === 'main' && p.type === MSG.DISCOVER;
    const isRequest = on === 'proxy' && (p.type === MSG.REQUEST || p.type === MSG.INFORM);
    if (!isDiscover && !isRequest) return;
    const boot = this.bootFile(p, target, ipxe);
    if (!boot) return;
    const options: [number, Buffer][] = [
      [OPT.SERVER_ID, opt.ip(this.o.serverAddress)],
      [OPT.VENDOR_CLASS, opt.text('PXEClient')],
      // PXE discovery control 8: no boot server discovery, take the file name given here.
      [OPT.VENDOR, opt.sub([[6, Buffer.from([8])]])],
      ...this.bootOptions(boot),
    ];
    const uuid = p.options.get(OPT.CLIENT_UUID);
    if (uuid) options.push([OPT.CLIENT_UUID, uuid]);
    const reply: Reply = { type: isDiscover ? MSG.OFFER : MSG.ACK, xid: p.xid, flags: p.flags, mac: p.mac, ciaddr: isRequest ? p.ciaddr : undefined, siaddr: this.o.serverAddress, giaddr: p.giaddr, file: boot.file, options };
    if (isDiscover) this.sendToClient(p, reply);
    // From port 4011 itself: that is where the client asked.
    else this.send(encodeDhcp(reply), rinfo.port, rinfo.address, this.sockets[1]);
    this.milestone({ mac: p.mac, serverId: target.serverId, jobId: target.jobId, event: isDiscover ? 'offer' : 'ack', file: boot.file, client: boot.client, ip: isRequest ? p.ciaddr : undefined });
  }

  private async authoritative(p: DhcpPacket, target: BootTarget, rinfo: RemoteInfo, pxe: boolean, ipxe: boolean): Promise<void> {
    const r = target.reservation;
    if (!r) return; // known, but no address here: another server's business
    if (p.giaddr !== '0.0.0.0' ? !inCidr(p.giaddr, r.network.cidr) : !inCidr(this.o.serverAddress, r.network.cidr)) {
      this.o.log.warn({ mac: p.mac, server: target.name, giaddr: p.giaddr, network: r.network.cidr }, 'dhcp: request from another network than the reservation');
      return;
    }
    const serverId = read.ip(p, OPT.SERVER_ID);
    const requested = read.ip(p, OPT.REQUESTED_IP);
    const lease = { mac: p.mac, ip: r.ip, networkId: r.network.id, seconds: r.network.leaseSeconds, serverId: target.serverId };
    switch (p.type) {
      case MSG.DISCOVER:
        return this.answer(p, target, MSG.OFFER, pxe, ipxe);
      case MSG.REQUEST: {
        if (serverId && serverId !== this.o.serverAddress) return; // the client chose another server
        const asked = requested ?? (p.ciaddr !== '0.0.0.0' ? p.ciaddr : undefined);
        if (asked !== r.ip) return this.nak(p, `address ${asked ?? 'none'} is not this client's`);
        await this.o.backend.lease({ ...lease, state: 'bound' });
        return this.answer(p, target, MSG.ACK, pxe, ipxe);
      }
      case MSG.DECLINE:
        if (serverId !== this.o.serverAddress || requested !== r.ip) return;
        this.o.log.warn({ mac: p.mac, server: target.name, ip: r.ip }, 'dhcp: client declined its reserved address (in use by someone else?)');
        return this.o.backend.lease({ ...lease, state: 'declined' });
      case MSG.RELEASE:
        if (serverId !== this.o.serverAddress || p.ciaddr !== r.ip) return;
        return this.o.backend.lease({ ...lease, state: 'released' });
      case MSG.INFORM:
        return this.answer(p, target, MSG.ACK, pxe, ipxe, rinfo);
      default:
        return;
    }
  }

  private answer(p: DhcpPacket, target: BootTarget, type: typeof MSG.OFFER | typeof MSG.ACK, pxe: boolean, ipxe: boolean, inform?: RemoteInfo): void {
    const r = target.reservation!;
    const n = r.network;
    const options: [number, Buffer][] = [[OPT.SERVER_ID, opt.ip(this.o.serverAddress)]];
    if (!inform) options.push([OPT.LEASE_TIME, opt.u32(n.leaseSeconds)], [OPT.RENEWAL, opt.u32(Math.floor(n.leaseSeconds / 2))], [OPT.REBINDING, opt.u32(Math.floor((n.leaseSeconds * 7) / 8))]);
    options.push([OPT.SUBNET_MASK, opt.ip(mask(n.cidr))]);
    if (n.gateway) options.push([OPT.ROUTER, opt.ip(n.gateway)]);
    if (n.dns.length) options.push([OPT.DNS, opt.ips(n.dns)]);
    if (n.domain) options.push([OPT.DOMAIN, opt.text(n.domain)]);
    options.push([OPT.HOSTNAME, opt.text(target.name)]);
    const boot = pxe || ipxe ? this.bootFile(p, target, ipxe) : null;
    if (boot) options.push(...this.bootOptions(boot));
    const reply: Reply = { type, xid: p.xid, flags: p.flags, mac: p.mac, ciaddr: inform ? p.ciaddr : undefined, yiaddr: inform ? undefined : r.ip, siaddr: boot ? this.o.serverAddress : undefined, giaddr: p.giaddr, file: boot?.file, options };
    if (inform) this.send(encodeDhcp(reply), inform.port, inform.address);
    else this.sendToClient(p, reply);
    if (boot) this.milestone({ mac: p.mac, serverId: target.serverId, jobId: target.jobId, event: type === MSG.OFFER ? 'offer' : 'ack', file: boot.file, client: boot.client, ip: inform ? p.ciaddr : r.ip });
  }

  private nak(p: DhcpPacket, why: string): void {
    this.o.log.info({ mac: p.mac, why }, 'dhcp: NAK');
    const reply: Reply = { type: MSG.NAK, xid: p.xid, flags: p.flags | BROADCAST_FLAG, mac: p.mac, giaddr: p.giaddr, options: [[OPT.SERVER_ID, opt.ip(this.o.serverAddress)], [OPT.MESSAGE, opt.text(why)]] };
    const packet = encodeDhcp(reply);
    if (p.giaddr !== '0.0.0.0') this.send(packet, this.o.port, p.giaddr);
    else this.send(packet, this.o.clientPort, this.o.broadcastAddress);
  }

  /**
   * RFC 2131 4.1: through the relay when there is one; to ciaddr when the client has one;
   * otherwise broadcast: a client without an address cannot take unicast (and Node cannot write
   * the ARP entry unicast needs), and EDK2 ignores replies to the subnet broadcast.
   */
  private sendToClient(p: DhcpPacket, reply: Reply): void {
    if (p.giaddr !== '0.0.0.0') return this.send(encodeDhcp(reply), this.o.port, p.giaddr);
    if (p.ciaddr !== '0.0.0.0') return this.send(encodeDhcp(reply), this.o.clientPort, p.ciaddr);
    this.send(encodeDhcp({ ...reply, flags: reply.flags | BROADCAST_FLAG }), this.o.clientPort, this.o.broadcastAddress);
  }

  private send(packet: Buffer, port: number, address: string, via = this.sockets[0]): void {
    via?.send(packet, port, address);
  }

  private milestone(m: BootMilestone): void {
    this.emit('milestone', m);
  }
}
