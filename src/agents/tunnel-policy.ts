/** Names under which an agent may address the hub's loopback. */
const LOOPBACK = new Set(['127.0.0.1', 'localhost']);

export interface DirectChannel {
  host: string;
  port: number;
}

/**
 * Whether an agent may open a direct-tcpip channel: to the hub API on the hub loopback, nothing else.
 * Backup data does not use the tunnel: the agent writes into each export directly over TLS with the
 * export's own pre-shared key, which the hub hands only to the agent of that job.
 */
export function mayOpenDirect(channel: DirectChannel, apiPort: number): boolean {
  return LOOPBACK.has(channel.host) && channel.port === apiPort;
}
