import { createServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { splice } from './splice';

export interface LocalForward {
  /** A port on the agent's 127.0.0.1 that leads to the hub port. */
  port: number;
  close(): Promise<void>;
}

/**
 * A plain local TCP port in front of tunnel channels, for tools that want a socket (qemu-img,
 * nbdcopy) rather than a stream. Each accepted connection opens its own channel, so it keeps
 * working across reconnects of the tunnel.
 */
export async function listenLocalForward(openChannel: () => Promise<Duplex>, onFailure: (err: unknown) => void): Promise<LocalForward> {
  const sockets = new Set<Socket>();
  const listener = createServer({ allowHalfOpen: true }, (socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    openChannel().then(
      (channel) => (socket.destroyed ? channel.destroy() : splice(socket, channel)),
      (err: unknown) => {
        onFailure(err);
        socket.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', () => {
      listener.removeListener('error', reject);
      resolve();
    });
  });
  let closing: Promise<void> | undefined;
  return {
    port: (listener.address() as { port: number }).port,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        listener.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
