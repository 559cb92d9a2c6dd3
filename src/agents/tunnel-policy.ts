/** Names under which an agent may address the hub's loopback. */
const LOOPBACK = new Set(['127.0.0.1', 'localhost']);

export interface DirectChannel {
  host: string;
  port: number;
}

export interface DirectPolicyFacts {
  /** The hub API port: every agent may call the API it reports to. */
  apiPort: number;
  /** The lease that held the port when it was granted to this agent; absent when this agent holds no grant for it. */
  grantedLease: string | undefined;
  /** The lease that holds the port now, by the port pool's own events; absent when nobody leases it. */
  currentLease: string | undefined;
}

/**
 * Whether an agent may open a direct-tcpip channel: only to the hub loopback, and there only
 * to the API or to a port it was granted for a lease that still holds it. A grant dies with its
 * lease, so a port released and leased again to another job is never reachable through an old grant.
 */
export function mayOpenDirect(channel: DirectChannel, facts: DirectPolicyFacts): boolean {
  if (!LOOPBACK.has(channel.host)) return false;
  if (channel.port === facts.apiPort) return true;
  return facts.grantedLease !== undefined && facts.grantedLease === facts.currentLease;
}
