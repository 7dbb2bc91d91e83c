import { join } from 'node:path';

/** What the native sender needs for one transfer's data phase (native/tftp-sender/tftp_sender.c). */
export interface NativeTransferOptions {
  bindAddress: string;
  clientAddress: string;
  clientPort: number;
  /** The file's bytes, or an open file descriptor to read them from. */
  data?: Buffer;
  fd?: number;
  size: number;
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  maxBackoffMs: number;
  retries: number;
  spinUs?: number;
  oack?: Buffer;
  timeoutPacket: Buffer;
  readErrorPacket: Buffer;
}

export interface NativeTransferResult {
  outcome: 'done' | 'timeout' | 'client-error' | 'read-error' | 'aborted';
  /** Blocks the client acknowledged. */
  acked: number;
  retransmits: number;
}

declare const handleBrand: unique symbol;
export type NativeTransfer = { readonly [handleBrand]: true };

export interface NativeSender {
  /** Binds a socket, connects it to the client and runs the transfer on a thread; `done` is called once. */
  start(options: NativeTransferOptions, done: (result: NativeTransferResult) => void): NativeTransfer;
  abort(transfer: NativeTransfer): void;
}

let loaded: { sender: NativeSender | null; error?: string } | undefined;

/**
 * The native TFTP sender, built by `npm install` (node-gyp: needs make and a C compiler), or null
 * with the reason when it is not built: the server then sends from JavaScript.
 */
export function loadNativeSender(): { sender: NativeSender | null; error?: string } {
  if (!loaded) {
    // From src/ (tests) and dist/ alike: four levels up is the package root.
    const path = join(__dirname, '..', '..', '..', '..', 'native', 'tftp-sender', 'build', 'Release', 'tftp_sender.node');
    try {
      loaded = { sender: require(path) as NativeSender };
    } catch (err) {
      loaded = { sender: null, error: (err as Error).message.split('\n')[0] };
    }
  }
  return loaded;
}
