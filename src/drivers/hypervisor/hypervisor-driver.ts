import type { Duplex } from 'node:stream';
import type { SshTarget } from '../transport/ssh-client';

/** A hypervisor as a driver sees it: how to reach it and where its VM disks live. */
export interface HypervisorTarget {
  name: string;
  ssh: SshTarget;
  libvirtUri: string;
  storagePool: string;
}

/** A VM's serial console: bytes both ways; `close()` ends it on the host too. */
export interface VmConsole {
  stream: Duplex;
  close(): Promise<void>;
}

/** A file in a storage pool and, optionally, where to fetch it. */
export interface PoolFile {
  file: string;
  url?: string;
  sha256?: string;
}

export type VmPowerState = 'running' | 'shut off' | 'paused' | 'absent' | 'other';

export class HypervisorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HypervisorError';
  }
}

/**
 * What racksmith does to a hypervisor, one capability per method; every method is safe to repeat
 * (a job's task runs again after a crash). `libvirt-over-ssh` for real hosts, `fake` for the
 * logic above it.
 */
export interface HypervisorDriver {
  readonly name: string;
  /** `kvm` where the host has hardware virtualisation for qemu, else `qemu` (emulation). */
  domainType(t: HypervisorTarget): Promise<'kvm' | 'qemu'>;
  /** The directory of the storage pool VM disks go in. */
  poolPath(t: HypervisorTarget): Promise<string>;
  /**
   * The files of a base image in the pool: there already, or fetched from their URLs on the host
   * (checked against their SHA-256; concurrent fetches of one file wait for each other). The
   * names of those fetched.
   */
  ensureFiles(t: HypervisorTarget, files: PoolFile[]): Promise<string[]>;
  /** Every VM defined on the host and its state (the status sync). */
  list(t: HypervisorTarget): Promise<Map<string, VmPowerState>>;
  /** A qcow2 overlay of `sizeGb` on the base image (a file name in the pool), replacing any disk the VM had; its path. */
  createDisk(t: HypervisorTarget, vm: string, baseImage: string, sizeGb: number): Promise<string>;
  /** A NoCloud seed ISO (volume id cidata) holding these files; its path. */
  writeSeed(t: HypervisorTarget, vm: string, files: Record<string, string>): Promise<string>;
  define(t: HypervisorTarget, vm: string, domainXml: string): Promise<void>;
  start(t: HypervisorTarget, vm: string): Promise<void>;
  /** Graceful (ACPI) unless `force`. */
  stop(t: HypervisorTarget, vm: string, force: boolean): Promise<void>;
  reboot(t: HypervisorTarget, vm: string): Promise<void>;
  suspend(t: HypervisorTarget, vm: string): Promise<void>;
  resume(t: HypervisorTarget, vm: string): Promise<void>;
  state(t: HypervisorTarget, vm: string): Promise<VmPowerState>;
  /** Offline: vCPUs and RAM of the definition, the disk grown (never shrunk). */
  resize(t: HypervisorTarget, vm: string, size: { vcpus: number; ramMb: number; diskGb: number }): Promise<void>;
  /** The guest's IPv4 address as the host knows it (DHCP lease, else ARP), or null. */
  ipv4(t: HypervisorTarget, vm: string): Promise<string | null>;
  /** The VM's serial console (taken over from any other holder on the host). */
  openConsole(t: HypervisorTarget, vm: string): Promise<VmConsole>;
  /** Close what the driver keeps open (SSH connections). */
  close?(): Promise<void>;
  /** Stop, undefine and remove the VM's disk and seed; nothing left is not an error. */
  remove(t: HypervisorTarget, vm: string): Promise<void>;
}
