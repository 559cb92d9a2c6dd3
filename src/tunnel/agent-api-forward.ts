import { createServer, Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Connection } from 'ssh2';
import { splice } from './splice';
import { TunnelLogger } from './tunnel-logger';

/**
 * The hub's end of the agent's reverse forward (`tcpip-forward`): a listener on
 * 127.0.0.1:<ephemeral> whose connections become `forwarded-tcpip` channels to the agent's
 * own API. A plain local port lets the hub use any HTTP client (fetch, http.request, axios)
 * unchanged; it is bound to loopback only, like OpenSSH's `-R` default.
 */
export class AgentApiForward {
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly conn: Connection,
    private readonly listener: Server,
    /** The address the agent asked for: it matches incoming channels on it against this. */
    private readonly bindAddr: string,
    readonly port: number,
  ) {}

  static async open(conn: Connection, bindAddr: string, agentId: string, log: TunnelLogger): Promise<AgentApiForward> {
    const listener = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(0, '127.0.0.1', () => {
        listener.removeListener('error', reject);
        resolve();
      });
    });
    const forward = new AgentApiForward(conn, listener, bindAddr, (listener.address() as { port: number }).port);
    listener.on('connection', (socket) => forward.relay(socket, agentId, log));
    return forward;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A raw channel to the agent's API, for callers that want a stream rather than a port. */
  openChannel(originAddr = '127.0.0.1', originPort = 0): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      try {
        this.conn.forwardOut(this.bindAddr, this.port, originAddr, originPort, (err, channel) => (err ? reject(err) : resolve(channel)));
      } catch (err) {
        reject(err); // ssh2 throws synchronously once the connection is gone
      }
    });
  }

  close(): void {
    this.listener.close();
    for (const socket of this.sockets) socket.destroy();
  }

  private relay(socket: Socket, agentId: string, log: TunnelLogger): void {
    socket.setNoDelay(true);
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    this.openChannel(socket.remoteAddress ?? '127.0.0.1', socket.remotePort ?? 0).then(
      (channel) => (socket.destroyed ? channel.destroy() : splice(socket, channel)),
      (err: unknown) => {
        log.warn({ agentId, err: String(err) }, 'agent refused a connection to its API through the reverse forward');
        socket.destroy();
      },
    );
  }
}
