/**
 * Zero-copy receive for sockets made by connectSocket(): net's `onread` option
 * with a buffer generator lets the client choose, before every read system
 * call, where the kernel puts the next bytes. While a READ reply's data is
 * arriving that is the caller's destination buffer itself, so bulk data is
 * never copied in user space (as libnbd does with its own recv calls).
 */
export const kNbdDirectRead = Symbol('sendense.nbd.directRead');

export interface DirectReadHooks {
  /** Buffer for the next read system call. */
  nextBuffer(): Uint8Array;
  /** `nread` bytes were read into `buffer` (the one nextBuffer returned last). */
  onRead(nread: number, buffer: Uint8Array): void;
}

export interface DirectReadControl {
  /** Route reads to `hooks` (undefined: back to plain 'data' events). */
  install(hooks: DirectReadHooks | undefined): void;
}

export function directReadControl(stream: object): DirectReadControl | undefined {
  return (stream as { [kNbdDirectRead]?: DirectReadControl })[kNbdDirectRead];
}
