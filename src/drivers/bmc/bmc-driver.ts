import type { Duplex } from 'node:stream';

/**
 * What racksmith asks of a server's BMC. One interface, capability by capability; each server
 * names its driver (ipmitool, redfish, fake).
 */
export type PowerState = 'on' | 'off';
export type PowerAction = 'on' | 'off' | 'soft-off' | 'cycle' | 'reset';
export type BootDevice = 'pxe' | 'disk';
/** IPMI privilege levels, lowest first; Redfish roles map onto them. */
export const PRIVILEGES = ['callback', 'user', 'operator', 'administrator'] as const;
export type Privilege = (typeof PRIVILEGES)[number];

export interface BmcTarget {
  serverId: string;
  address: string;
  username: string | null;
  password: string | null;
}

export interface BmcUser {
  slot: number;
  name: string;
  enabled: boolean;
  /** null: no access on the LAN channel. */
  privilege: Privilege | null;
}

export interface NewBmcUser {
  slot: number;
  name: string;
  password: string;
  privilege: Privilege;
}

/** A serial-over-LAN session: bytes both ways; `close()` ends it on the BMC too. */
export interface SolSession {
  stream: Duplex;
  close(): Promise<void>;
}

/** What ending a user's sessions did, and what is still there after it. */
export interface SessionsEnded {
  /** Sessions the BMC closed (IPMI Close Session, Redfish DELETE of the session). */
  closed: number;
  /** SOL payloads deactivated by the administrator where the BMC refused to close their session. */
  payloadsDeactivated: number;
  /** What the BMC still lists for the user afterwards ("session handle 3", "SOL payload 1"). */
  remaining: string[];
  /** What the BMC refused on the way, for the audit. */
  refused: string[];
}

export interface BmcDriver {
  readonly name: string;
  powerStatus(t: BmcTarget): Promise<PowerState>;
  /**
   * Optional: the power state of many BMCs at once, by serverId (a reading or the BmcError of that
   * BMC). Targets left out of the answer are asked one by one with powerStatus.
   */
  powerStatusMany?(targets: BmcTarget[]): Promise<Map<string, PowerState | BmcError>>;
  /** Applies the action. `on` of a running server and `off` of a stopped one change nothing. */
  power(t: BmcTarget, action: PowerAction): Promise<void>;
  /** `once`: for the next boot only (then the BIOS order again). */
  setBootDevice(t: BmcTarget, device: BootDevice, opts: { once: boolean; uefi?: boolean }): Promise<void>;

  listUsers(t: BmcTarget): Promise<BmcUser[]>;
  /** Writes name, password and privilege into the slot, enables LAN access, enables the user. */
  createUser(t: BmcTarget, user: NewBmcUser): Promise<void>;
  setUserPassword(t: BmcTarget, slot: number, password: string): Promise<void>;
  setUserEnabled(t: BmcTarget, slot: number, enabled: boolean): Promise<void>;
  /** Disables the user, scrambles its password, takes its access away and clears the name. */
  deleteUser(t: BmcTarget, slot: number): Promise<void>;
  /**
   * Ends every session and serial-over-LAN payload the user in this slot holds (call it after
   * the user is disabled, so that no new one starts), then lists again: `remaining` names what
   * is still there. Empty `remaining` is the proof that the user has no way in left.
   */
  endUserSessions(t: BmcTarget, slot: number): Promise<SessionsEnded>;
  /**
   * Tries to open a session as `username` at `privilege`. true: the BMC granted it. false: it
   * refused (wrong password, disabled user, or privilege above the user's limit). Throws when
   * the BMC cannot be reached.
   */
  canLogin(t: BmcTarget, username: string, password: string, privilege: Privilege): Promise<boolean>;

  openSol(t: BmcTarget): Promise<SolSession>;
}

/** A BMC that did not answer or refused racksmith's own credentials: the message says which. */
export class BmcError extends Error {
  constructor(
    message: string,
    readonly kind: 'unreachable' | 'auth' | 'refused' | 'unsupported' | 'protocol',
  ) {
    super(message);
    this.name = 'BmcError';
  }
}
