import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Client } from 'ssh2';

/** How long a hub gets to open a channel a client asked for. */
export const CHANNEL_OPEN_TIMEOUT_MS = 15_000;

/**
 * A direct-tcpip channel to destHost:destPort as the hub resolves it. `what` names the
 * destination in errors ("its port 9000", "its API"), so callers can tell refusals apart.
 */
export function openDirectChannel(client: Client, destHost: string, destPort: number, what: string, timeoutMs = CHANNEL_OPEN_TIMEOUT_MS): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    // A hub that never answers the channel request (its process gone while the TCP connection lingers) must not
    // hold the caller for ever; a channel opened after the limit is closed at once.
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new Error(`hub did not open a channel to ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    try {
      client.forwardOut('127.0.0.1', 0, destHost, destPort, (err, channel) => {
        clearTimeout(timer);
        if (late) return void channel?.destroy();
        if (err) reject(new Error(`hub refused a channel to ${what}: ${err.message}`));
        else resolve(channel);
      });
    } catch (err) {
      clearTimeout(timer);
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
}

/**
 * Says goodbye (SSH_MSG_DISCONNECT) and resolves once the connection is closed. Our own socket is
 * destroyed after graceMs because ssh2's end() only half-closes, which a hub that stopped answering
 * never completes. Call it only while the client is still open: a closed one emits no further 'close'.
 */
export function endClient(client: Client, socket: Socket, graceMs = 1_000): Promise<void> {
  return new Promise<void>((resolve) => {
    const giveUp = setTimeout(() => socket.destroy(), graceMs);
    client.once('close', () => {
      clearTimeout(giveUp);
      resolve();
    });
    try {
      client.end();
    } catch {
      socket.destroy();
    }
  });
}
