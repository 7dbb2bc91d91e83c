/**
 * What racksmith asks of a server's BMC. One interface, capability by capability; each server
 * names its driver (ipmitool, redfish, fake). The BMC issue adds users and serial-over-LAN.
 */
export type PowerState = 'on' | 'off';
export type BootDevice = 'pxe' | 'disk';

export interface BmcTarget {
  serverId: string;
  address: string;
  username: string | null;
  password: string | null;
}

export interface BmcDriver {
  readonly name: string;
  powerStatus(t: BmcTarget): Promise<PowerState>;
  powerOn(t: BmcTarget): Promise<void>;
  powerOff(t: BmcTarget): Promise<void>;
  /** `once`: for the next boot only (then the BIOS order again). */
  setBootDevice(t: BmcTarget, device: BootDevice, opts: { once: boolean; uefi?: boolean }): Promise<void>;
}
