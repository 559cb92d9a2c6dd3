import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import { AcceptConnection, Client, ClientChannel, RejectConnection } from 'ssh2';
import { Backoff } from './backoff';
import { batchWrites } from './batch-writes';
import { CHANNEL_OPEN_TIMEOUT_MS, endClient, openDirectChannel } from './ssh-client-helpers';
import { HostKeyTrust, HostKeyVerdict } from './host-key-trust';
import { listenLocalForward, LocalForward } from './local-forward';
import { splice } from './splice';
import { errorMessage, silentLogger, TunnelLogger } from './tunnel-logger';

export interface TunnelClientOptions {
  host: string;
  port: number;
  privateKeyFile: string;
  /** `SHA256:...` of the hub's host key. Without it the first key seen is trusted and recorded in knownHostsFile. */
  hostKeyFingerprint?: string;
  /** Default: `known_hosts` next to the private key (the agent's directory). */
  knownHostsFile?: string;
  /** The agent's own HTTP API on 127.0.0.1, reached by the hub through the reverse forward. */
  localApiPort: number;
  username?: string;
  log?: TunnelLogger;
  /** A silent hub is dropped after keepaliveIntervalMs * (keepaliveCountMax + 1): 15 s by default. */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** Limit for TCP connect + handshake + authentication. */
  readyTimeoutMs?: number;
  reconnect?: { initialMs?: number; maxMs?: number; jitter?: number };
}

export interface TunnelClient {
  on(event: 'connected', listener: () => void): this;
  on(event: 'disconnected', listener: (reason: string) => void): this;
  once(event: 'connected', listener: () => void): this;
  once(event: 'disconnected', listener: (reason: string) => void): this;
}

/**
 * The agent's end: dials the hub, keeps the connection up (reconnecting with backoff), offers
 * the agent API to the hub through a reverse forward, and opens channels to hub ports.
 * "connected" means authenticated AND the reverse forward is in place, i.e. usable both ways.
 */
export class TunnelClient extends EventEmitter {
  private readonly log: TunnelLogger;
  private readonly trust: HostKeyTrust;
  private readonly backoff: Backoff;
  private client?: Client;
  /** Ours, not ssh2's: once ssh2 has half-closed its socket, its destroy() is a no-op. */
  private socket?: Socket;
  private isConnected = false;
  private running = false;
  private retryTimer?: NodeJS.Timeout;
  private readonly localForwards = new Set<LocalForward>();

  constructor(private readonly opts: TunnelClientOptions) {
    super();
    this.log = opts.log ?? silentLogger;
    const knownHosts = opts.knownHostsFile ?? join(dirname(opts.privateKeyFile), 'known_hosts');
    this.trust = new HostKeyTrust(opts.host, opts.port, knownHosts, opts.hostKeyFingerprint, this.log);
    this.backoff = new Backoff(opts.reconnect?.initialMs, opts.reconnect?.maxMs, opts.reconnect?.jitter);
  }

  get connected(): boolean {
    return this.isConnected;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.dial();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.retryTimer);
    const client = this.client;
    const socket = this.socket;
    await Promise.all([...this.localForwards].map((forward) => forward.close()));
    if (!client || !socket) return;
    await endClient(client, socket);
  }

  /** Resolves at the next (or current) connected state. */
  waitConnected(timeoutMs = 10_000): Promise<void> {
    if (this.isConnected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.removeListener('connected', onConnected);
        reject(new Error(`tunnel to ${this.opts.host}:${this.opts.port} not connected within ${timeoutMs} ms`));
      }, timeoutMs);
      const onConnected = () => {
        clearTimeout(timer);
        resolve();
      };
      this.once('connected', onConnected);
    });
  }

  /** A channel to 127.0.0.1:port on the hub; rejected when the hub does not allow that port for this agent. */
  openDirect(port: number, timeoutMs = CHANNEL_OPEN_TIMEOUT_MS): Promise<Duplex> {
    const client = this.client;
    if (!client || !this.isConnected) return Promise.reject(new Error('tunnel is not connected'));
    return openDirectChannel(client, '127.0.0.1', port, `its port ${port}`, timeoutMs);
  }

  /** A local 127.0.0.1 port leading to hubPort through the tunnel; closed by its close() or by stop(). */
  async forwardLocal(hubPort: number): Promise<LocalForward> {
    const forward = await listenLocalForward(
      () => this.openDirect(hubPort),
      (err) => this.log.warn({ hubPort, err: errorMessage(err) }, 'local forward could not open a tunnel channel'),
    );
    this.localForwards.add(forward);
    const close = forward.close;
    forward.close = () => {
      this.localForwards.delete(forward);
      return close();
    };
    return forward;
  }

  private dial(): void {
    let privateKey: Buffer;
    try {
      privateKey = readFileSync(this.opts.privateKeyFile); // re-read each time: the key may be rotated
    } catch (err) {
      this.log.error({ file: this.opts.privateKeyFile, err: errorMessage(err) }, 'cannot read the agent key');
      return this.retryLater();
    }
    const client = new Client();
    const socket = batchWrites(connect({ host: this.opts.host, port: this.opts.port }));
    socket.setNoDelay(true); // NBD requests are small and latency-bound
    this.client = client;
    this.socket = socket;
    let failure: string | undefined;
    client.on('ready', () => this.requestReverseForward(client));
    client.on('tcp connection', (_info, accept, reject) => this.serveAgentApi(accept, reject));
    client.on('error', (err) => {
      failure ??= err.message;
      this.log.warn({ hub: `${this.opts.host}:${this.opts.port}`, err: err.message }, 'tunnel connection error');
    });
    client.on('close', () => {
      if (this.client === client) {
        this.client = undefined;
        this.socket = undefined;
      }
      socket.destroy();
      if (this.isConnected) {
        this.isConnected = false;
        this.log.warn({ reason: failure ?? 'connection closed' }, 'tunnel disconnected');
        this.emit('disconnected', failure ?? 'connection closed');
      }
      if (this.running) this.retryLater();
    });
    client.connect({
      sock: socket,
      username: this.opts.username ?? 'sendense-agent',
      privateKey,
      hostVerifier: (key: Buffer) => {
        let verdict: HostKeyVerdict;
        try {
          verdict = this.trust.check(key);
        } catch (err) {
          // e.g. an unwritable known_hosts: refuse rather than let ssh2 throw mid-handshake
          verdict = { ok: false, reason: `cannot check the hub host key: ${errorMessage(err)}` };
        }
        if (!verdict.ok) {
          failure = verdict.reason;
          this.log.error({ hub: `${this.opts.host}:${this.opts.port}` }, verdict.reason);
        }
        return verdict.ok;
      },
      keepaliveInterval: this.opts.keepaliveIntervalMs ?? 5_000,
      keepaliveCountMax: this.opts.keepaliveCountMax ?? 2,
      readyTimeout: this.opts.readyTimeoutMs ?? 20_000,
    });
  }

  private requestReverseForward(client: Client): void {
    try {
      // Port 0: the hub picks a loopback port on its side; we never name hub resources.
      client.forwardIn('127.0.0.1', 0, (err) => {
        if (this.client !== client) return;
        if (err) {
          this.log.error({ err: err.message }, 'hub refused the reverse forward for the agent API; reconnecting');
          return void client.end();
        }
        this.isConnected = true;
        this.backoff.reset();
        this.log.info({ hub: `${this.opts.host}:${this.opts.port}` }, 'tunnel connected');
        this.emit('connected');
      });
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'connection lost before the reverse forward');
    }
  }

  private serveAgentApi(accept: AcceptConnection<ClientChannel>, reject: RejectConnection): void {
    const local = connect({ host: '127.0.0.1', port: this.opts.localApiPort, allowHalfOpen: true });
    local.setNoDelay(true);
    const onError = (err: Error) => {
      this.log.warn({ port: this.opts.localApiPort, err: err.message }, 'local agent API unreachable for a hub request');
      reject();
    };
    local.once('error', onError);
    local.once('connect', () => {
      local.removeListener('error', onError);
      splice(accept(), local);
    });
  }

  private retryLater(): void {
    if (!this.running) return;
    const delay = this.backoff.next();
    this.log.info({ inMs: delay }, 'tunnel reconnecting');
    this.retryTimer = setTimeout(() => this.dial(), delay);
  }
}
