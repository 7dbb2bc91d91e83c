import type { Socket } from 'node:dgram';

/** Receive buffer asked for the boot servers' listening sockets (the kernel caps it at net.core.rmem_max). */
export const STORM_RECV_BUFFER = 4 * 1024 * 1024;

/**
 * A boot storm's first packets (hundreds of DISCOVERs or read requests) arrive within the same
 * millisecond; with the default buffer (~200 KiB, some 200 packets) the rest are dropped and each of
 * those clients waits for its own retransmission (4 s for a PXE ROM's DHCP).
 */
export function roomForStorms(socket: Socket): void {
  try {
    socket.setRecvBufferSize(STORM_RECV_BUFFER);
  } catch {
    // Not allowed here: the default buffer stays.
  }
}
