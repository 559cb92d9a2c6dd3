import { connect, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AcceptConnection, Connection, RejectConnection, ServerChannel, TcpipBindInfo, TcpipRequestInfo } from 'ssh2';
import { AgentApiForward } from './agent-api-forward';
import { batchWrites } from './batch-writes';
import { splice } from './splice';
import { errorMessage, TunnelLogger } from './tunnel-logger';

export type AllowDirect = (agentId: string, destHost: string, destPort: number) => Promise<boolean>;

/** Names under which an agent may address the hub's loopback; all of them mean 127.0.0.1. */
const HUB_LOOPBACK = new Set(['127.0.0.1', 'localhost']);

/**
 * direct-tcpip destination host meaning "the hub's HTTP API, wherever it listens": a peer hub
 * syncing over the tunnel cannot know this hub's API port, and should not have to. The port it
 * sends is ignored; the hub substitutes its own (TunnelServerOptions.apiPort).
 */
export const HUB_API_DESTINATION = 'sendense-api';

/**
 * One authenticated agent connection, as the hub sees it: it polices the agent's channel
 * requests and holds the hub's end of the agent's reverse forward.
 */
export class TunnelSession {
  readonly connectedAt = new Date();
  private apiForward?: AgentApiForward;
  private apiWaiters: Array<() => void> = [];
  private readonly upstreams = new Set<Socket>();
  private closedReason?: string;

  constructor(
    readonly agentId: string,
    readonly fingerprint: string,
    readonly remoteAddress: string,
    private readonly conn: Connection,
    private readonly socket: Socket,
    private readonly allowDirect: AllowDirect,
    private readonly log: TunnelLogger,
    /** Where HUB_API_DESTINATION leads; without it that name is refused. */
    private readonly apiPort?: number,
  ) {
    conn.on('tcpip', (accept, reject, info) => void this.onDirect(accept, reject, info));
    conn.on('request', (accept: ((port?: number) => void) | undefined, reject: (() => void) | undefined, name: string, info: TcpipBindInfo) =>
      void this.onGlobalRequest(accept, reject, name, info),
    );
    conn.on('session', (_accept, reject) => {
      this.log.warn({ agentId }, 'session channel refused (no shell, exec or sftp on the tunnel)');
      reject();
    });
    conn.on('openssh.streamlocal', (_accept, reject, info) => {
      this.log.warn({ agentId, socketPath: info.socketPath }, 'direct-streamlocal channel refused');
      reject();
    });
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** `http://127.0.0.1:<port>`: a hub-local port reaching the agent's API; undefined until the agent has asked for its reverse forward. */
  get agentApiUrl(): string | undefined {
    return this.apiForward?.url;
  }

  /** Resolves with agentApiUrl once the agent's reverse forward exists (it follows authentication by one round trip). */
  waitForAgentApi(timeoutMs = 5_000): Promise<string> {
    return new Promise((resolve, reject) => {
      if (this.apiForward) return resolve(this.apiForward.url);
      if (this.closed) return reject(new Error(`agent ${this.agentId} disconnected`));
      const timer = setTimeout(() => {
        this.apiWaiters = this.apiWaiters.filter((w) => w !== wake);
        reject(new Error(`agent ${this.agentId} set up no reverse forward within ${timeoutMs} ms`));
      }, timeoutMs);
      const wake = () => {
        clearTimeout(timer);
        if (this.apiForward) resolve(this.apiForward.url);
        else reject(new Error(`agent ${this.agentId} disconnected`));
      };
      this.apiWaiters.push(wake);
    });
  }

  /** A raw stream to the agent's API (a `forwarded-tcpip` channel), for callers that do not want a local port. */
  openAgentApi(): Promise<Duplex> {
    if (!this.apiForward) return Promise.reject(new Error(`agent ${this.agentId} has no reverse forward`));
    return this.apiForward.openChannel();
  }

  /** Ends the connection; the server reports the disconnect. */
  close(reason: string): void {
    if (this.closed) return;
    this.closedReason = reason;
    this.release();
    try {
      this.conn.end(); // tells the agent why via SSH_MSG_DISCONNECT before the socket goes
    } catch {
      /* already gone */
    }
    this.socket.destroy();
  }

  /** Called by the server once the transport is gone, whatever the cause. */
  release(): void {
    this.closedReason ??= 'connection closed';
    this.apiForward?.close();
    this.apiForward = undefined;
    for (const upstream of this.upstreams) upstream.destroy();
    for (const wake of this.apiWaiters.splice(0)) wake();
  }

  private async onDirect(accept: AcceptConnection<ServerChannel>, reject: RejectConnection, info: TcpipRequestInfo): Promise<void> {
    const requested = { agentId: this.agentId, host: info.destIP, port: info.destPort };
    const toApi = info.destIP === HUB_API_DESTINATION;
    const destPort = toApi ? this.apiPort : info.destPort;
    if (destPort === undefined) {
      this.log.warn(requested, 'direct-tcpip refused: no hub API port configured for this tunnel');
      return reject();
    }
    if (!toApi && !HUB_LOOPBACK.has(info.destIP)) {
      // The tunnel reaches hub-local services only; it must never become a way into the hub's network.
      this.log.warn(requested, 'direct-tcpip refused: destination is not the hub loopback');
      return reject();
    }
    const where = toApi ? { ...requested, apiPort: destPort } : requested;
    // allowDirect judges the port actually connected to, so naming the API is no way around the policy.
    let allowed = false;
    try {
      allowed = await this.allowDirect(this.agentId, '127.0.0.1', destPort);
    } catch (err) {
      this.log.error({ ...where, err: errorMessage(err) }, 'direct-tcpip refused: allowDirect failed');
    }
    if (!allowed) {
      this.log.warn(where, 'direct-tcpip refused: port not allowed for this agent');
      return reject();
    }
    if (this.closed) return;
    const upstream = batchWrites(connect({ host: '127.0.0.1', port: destPort, allowHalfOpen: true }));
    upstream.setNoDelay(true); // NBD is request/response: Nagle would add delayed-ACK stalls
    this.upstreams.add(upstream);
    upstream.once('close', () => this.upstreams.delete(upstream));
    const onConnectError = (err: Error) => {
      this.log.warn({ ...where, err: err.message }, 'direct-tcpip failed: nothing answers on that port');
      reject();
    };
    upstream.once('error', onConnectError);
    upstream.once('connect', () => {
      upstream.removeListener('error', onConnectError);
      if (this.closed) return upstream.destroy();
      let channel: ServerChannel;
      try {
        channel = accept();
      } catch {
        return upstream.destroy();
      }
      this.log.debug?.(where, 'direct-tcpip opened');
      splice(channel, upstream);
    });
  }

  private async onGlobalRequest(accept: ((port?: number) => void) | undefined, reject: (() => void) | undefined, name: string, info: TcpipBindInfo): Promise<void> {
    const where = { agentId: this.agentId, request: name, bindAddr: info.bindAddr, bindPort: info.bindPort };
    if (name === 'cancel-tcpip-forward' && this.apiForward?.port === info.bindPort) {
      this.apiForward.close();
      this.apiForward = undefined;
      return accept?.();
    }
    // One forward per agent, hub-chosen port (bindPort 0), loopback only: the agent names nothing on the hub. A peer
    // hub (password session) serves no API to this hub: it gets none.
    if (name !== 'tcpip-forward' || this.fingerprint === 'password' || this.apiForward || info.bindPort !== 0 || !HUB_LOOPBACK.has(info.bindAddr)) {
      this.log.warn(where, 'global request refused');
      return reject?.();
    }
    try {
      const forward = await AgentApiForward.open(this.conn, info.bindAddr, this.agentId, this.log);
      if (this.closed) {
        forward.close();
        return reject?.();
      }
      this.apiForward = forward;
      accept?.(forward.port);
      this.log.info({ agentId: this.agentId, url: forward.url }, 'agent API reachable through the reverse forward');
      for (const wake of this.apiWaiters.splice(0)) wake();
    } catch (err) {
      this.log.error({ ...where, err: errorMessage(err) }, 'could not open the reverse-forward listener');
      reject?.();
    }
  }
}
