import { Injectable } from '@nestjs/common';
import { ConflictError, DomainError } from '../../common/errors';
import { BmcError, type BmcDriver, type BmcTarget } from '../../drivers/bmc/bmc-driver';
import { BmcDrivers } from '../../drivers/bmc/bmc-drivers';
import { SecretBox } from '../../common/secret-box';
import { DevicesService, type DeviceView } from '../inventory/devices.service';

export interface BmcHandle {
  device: DeviceView;
  driver: BmcDriver;
  target: BmcTarget;
}

/** A driver failure as the API shows it: the BMC is the one at fault, so 502 (or 409 without one). */
/** Where a BMC is reached: its address, with its port when one is set ("host:port", "[v6]:port"). */
export function bmcEndpoint(bmc: { address: string; port?: number | null }): string {
  if (!bmc.port) return bmc.address;
  return `${bmc.address.includes(':') && !bmc.address.startsWith('[') ? `[${bmc.address}]` : bmc.address}:${bmc.port}`;
}

export function bmcDomainError(err: unknown, name: string): unknown {
  if (!(err instanceof BmcError)) return err;
  if (err.kind === 'unsupported') return new ConflictError('bmc_unsupported', `server ${name}: ${err.message}`);
  const code = { unreachable: 'bmc_unreachable', auth: 'bmc_auth_failed', refused: 'bmc_refused', protocol: 'bmc_protocol_error' }[err.kind];
  return new DomainError(code, `server ${name}: ${err.message}`, 502);
}

/** Runs fn against a BMC already resolved; driver failures become domain errors naming the server. */
export async function onBmc<T>(h: BmcHandle, fn: (h: BmcHandle) => Promise<T>): Promise<T> {
  try {
    return await fn(h);
  } catch (err) {
    throw bmcDomainError(err, h.device.name);
  }
}

/** Which driver and which credentials reach a server's BMC. */
@Injectable()
export class BmcAccess {
  constructor(
    private readonly drivers: BmcDrivers,
    private readonly devices: DevicesService,
    private readonly secrets: SecretBox,
  ) {}

  /**
   * Driver and target of many BMCs at once, from rows already read (the power-state sync's one
   * query): each distinct sealed password is opened once, however many BMCs share it.
   */
  targets(rows: { id: string; name: string; address: string; port: number | null; driver: string; username: string | null; sealed: string | null }[]): Map<string, { driver: BmcDriver; target: BmcTarget } | Error> {
    const opened = new Map<string, string>();
    const out = new Map<string, { driver: BmcDriver; target: BmcTarget } | Error>();
    for (const r of rows) {
      try {
        const driver = this.drivers.get(r.driver);
        let password: string | null = null;
        if (r.sealed) {
          password = opened.get(r.sealed) ?? this.secrets.open(r.sealed);
          opened.set(r.sealed, password);
        }
        out.set(r.id, { driver, target: { serverId: r.id, address: bmcEndpoint(r), username: r.username, password } });
      } catch (err) {
        out.set(r.id, bmcDomainError(err, r.name) as Error);
      }
    }
    return out;
  }

  /**
   * `console`: the driver of the serial console, where the inventory names one of its own
   * (`bmc.consoleDriver`: a Redfish BMC's SOL goes through IPMI); everything else uses `bmc.driver`.
   */
  async forServer(serverId: string, capability: 'bmc' | 'console' = 'bmc'): Promise<BmcHandle> {
    const device = await this.devices.get(serverId);
    if (!device.bmc) throw new ConflictError('no_bmc', `server ${device.name} has no BMC in the inventory`);
    let driver: BmcDriver;
    try {
      driver = this.drivers.get(capability === 'console' ? (device.bmc.consoleDriver ?? device.bmc.driver) : device.bmc.driver);
    } catch (err) {
      throw bmcDomainError(err, device.name);
    }
    const target: BmcTarget = { serverId: device.id, address: bmcEndpoint(device.bmc), username: device.bmc.username, password: await this.devices.bmcPassword(device.id) };
    return { device, driver, target };
  }

  /** Runs fn against the server's BMC; driver failures become domain errors naming the server. */
  async call<T>(serverId: string, fn: (h: BmcHandle) => Promise<T>): Promise<T> {
    return onBmc(await this.forServer(serverId), fn);
  }
}
