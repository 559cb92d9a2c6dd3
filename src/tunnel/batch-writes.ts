import type { Socket } from 'node:net';

/**
 * Gathers every write made to `socket` in one tick of the event loop into one writev. ssh2 sends each
 * 32 KiB channel packet with its own write, and a hub-side channel hands each packet to the NBD socket
 * on its own: on loopback every such write is a syscall of its own, which cost more CPU than the
 * encryption (see docs/benchmarks.md, "backup"). Data and order are unchanged; only the syscalls are fewer.
 */
export function batchWrites(socket: Socket): Socket {
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write.apply(this, args);
  } as Socket['write'];
  return socket;
}
