import { readFile } from 'node:fs/promises';
import { createServer, Server as NetServer, Socket } from 'node:net';
import { AuthContext, AuthenticationType, Connection, PasswordAuthContext, Server as SshServer, utils } from 'ssh2';
import { batchWrites } from './batch-writes';
import { ensureHostKey, keyTypeOf, sshFingerprint } from './ssh-keys';
import { AllowDirect, TunnelSession } from './tunnel-session';
import { errorMessage, silentLogger, TunnelLogger } from './tunnel-logger';

export interface AgentPublicKey {
  /** SSH key type, e.g. `ssh-ed25519`. */
  algo: string;
  /** The key in SSH wire format. */
  data: Buffer;
  /** `SHA256:...`, as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  /** `<algo> <base64>`, comparable with a registered OpenSSH public key line (minus its comment). */
  openSsh: string;
}

export interface TunnelServerOptions {
  hostKeyFile: string;
  port: number;
  bind?: string;
  /** Which agent owns this key, or null for an unknown key. Called before the signature is checked too. */
  authorize: (publicKey: AgentPublicKey) => Promise<{ agentId: string } | null>;
  /**
   * Enables SSH password authentication (for peers holding an API token rather than a key): the
   * principal the password stands for, or null to refuse. Its id keys the session like an agent id,
   * so it must not collide with one (e.g. `sync:<name>`). Compare in constant time: this is reachable
   * by anyone who can open the port.
   */
  authorizePassword?: (username: string, password: string) => Promise<{ agentId: string } | null>;
  /** Whether this agent may open a channel to 127.0.0.1:destPort right now (its API, its leased NBD ports). */
  allowDirect: AllowDirect;
  /** The hub's HTTP API port on 127.0.0.1, reached through the destination name HUB_API_DESTINATION. */
  apiPort?: number;
  onConnected?: (agentId: string, session: TunnelSession) => void | Promise<void>;
  onDisconnected?: (agentId: string, reason: string) => void | Promise<void>;
  log?: TunnelLogger;
  /** A silent agent is dropped after keepaliveIntervalMs * (keepaliveCountMax + 1): 15 s by default. */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** Time allowed from TCP connect to successful authentication. */
  loginGraceMs?: number;
  maxAuthAttempts?: number;
}

/** The session's fingerprint when the peer proved itself with a password rather than a key. */
const PASSWORD_FINGERPRINT = 'password';

/** One TCP connection, before and after it becomes an agent's session. */
interface Inbound {
  socket: Socket;
  remote: string;
  authAttempts: number;
  loginGrace?: NodeJS.Timeout;
  agent?: { agentId: string; fingerprint: string };
  session?: TunnelSession;
  error?: string;
}

/**
 * The hub's embedded SSH server: agents dial in, authenticate with a registered key (peer hubs,
 * when enabled, with a password that is an API token) and get exactly the channels the hub allows
 * them. Sessions are keyed by agent id; a new connection from an agent replaces its old one (the
 * old one is usually a half-dead link the agent gave up on).
 */
export class TunnelServer {
  private readonly log: TunnelLogger;
  private listener?: NetServer;
  private readonly inbound = new Map<string, Inbound>();
  private readonly sessions = new Map<string, TunnelSession>();
  private hostFingerprint?: string;

  constructor(private readonly opts: TunnelServerOptions) {
    this.log = opts.log ?? silentLogger;
  }

  /** Fingerprint of the host key agents should pin; known after start(). */
  get hostKeyFingerprint(): string | undefined {
    return this.hostFingerprint;
  }

  get port(): number | undefined {
    const address = this.listener?.address();
    return address && typeof address === 'object' ? address.port : undefined;
  }

  session(agentId: string): TunnelSession | undefined {
    return this.sessions.get(agentId);
  }

  connectedAgents(): string[] {
    return [...this.sessions.keys()];
  }

  async start(): Promise<void> {
    if (this.listener) throw new Error('tunnel server already started');
    const hostKey = await ensureHostKey(this.opts.hostKeyFile);
    this.hostFingerprint = hostKey.fingerprint;
    const ssh = new SshServer({
      hostKeys: [await readFile(hostKey.privateKeyPath)],
      ident: 'sendense-hub',
      keepaliveInterval: this.opts.keepaliveIntervalMs ?? 5_000,
      keepaliveCountMax: this.opts.keepaliveCountMax ?? 2,
    });
    ssh.on('connection', (conn: Connection, info: { ip: string; port: number }) => this.onSshConnection(conn, `${info.ip}:${info.port}`));
    // Our own TCP listener feeds ssh2 through injectSocket so we hold every raw socket: ssh2's end()
    // only half-closes, and a frozen peer would otherwise keep a "closed" connection forever.
    const listener = createServer((socket) => this.onSocket(socket, ssh));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(this.opts.port, this.opts.bind ?? '0.0.0.0', () => {
        listener.removeListener('error', reject);
        resolve();
      });
    });
    listener.on('error', (err) => this.log.error({ err: err.message }, 'tunnel listener error'));
    this.listener = listener;
    this.log.info({ port: this.port, bind: this.opts.bind ?? '0.0.0.0', hostKey: hostKey.fingerprint }, 'tunnel server listening');
  }

  /** Stops listening and closes every session (each reported through onDisconnected). */
  async stop(): Promise<void> {
    const listener = this.listener;
    if (!listener) return;
    this.listener = undefined;
    const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
    for (const session of [...this.sessions.values()]) this.endSession(session, 'hub tunnel server stopping');
    for (const { socket } of this.inbound.values()) socket.destroy();
    await closed;
  }

  private onSocket(socket: Socket, ssh: SshServer): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const inbound: Inbound = { socket, remote, authAttempts: 0 };
    this.inbound.set(remote, inbound);
    socket.setNoDelay(true);
    inbound.loginGrace = setTimeout(() => {
      this.log.warn({ remote }, 'no successful authentication in time; dropping the connection');
      socket.destroy();
    }, this.opts.loginGraceMs ?? 20_000);
    socket.once('close', () => {
      clearTimeout(inbound.loginGrace);
      this.inbound.delete(remote);
      if (inbound.session) this.endSession(inbound.session, inbound.error ?? 'connection closed');
    });
    ssh.injectSocket(batchWrites(socket));
  }

  private onSshConnection(conn: Connection, remote: string): void {
    const inbound = this.inbound.get(remote);
    if (!inbound) return void conn.end();
    conn.on('error', (err) => {
      // Protocol errors and the keepalive timeout both end here; only destroying the socket
      // really frees it (ssh2 would just half-close towards a peer that may never answer).
      inbound.error = err.message;
      this.log.warn({ remote, agentId: inbound.agent?.agentId, err: err.message }, 'tunnel connection error');
      inbound.socket.destroy();
    });
    conn.on('authentication', (ctx) => void this.authenticate(ctx, inbound));
    conn.on('ready', () => this.onAuthenticated(conn, inbound));
  }

  private async authenticate(ctx: AuthContext, inbound: Inbound): Promise<void> {
    const methods: AuthenticationType[] = this.opts.authorizePassword ? ['publickey', 'password'] : ['publickey'];
    const refuse = () => {
      if (++inbound.authAttempts >= (this.opts.maxAuthAttempts ?? 6)) inbound.socket.destroy();
      else safely(() => ctx.reject(methods));
    };
    if (ctx.method === 'password' && this.opts.authorizePassword) return this.authenticatePassword(ctx, inbound, this.opts.authorizePassword, refuse);
    if (ctx.method !== 'publickey') {
      // "none" is how every client asks which methods exist; anything else is worth a line in the log.
      if (ctx.method !== 'none') {
        const why = this.opts.authorizePassword ? 'public keys and passwords only' : 'public keys only';
        this.log.warn({ remote: inbound.remote, method: ctx.method, user: ctx.username }, `authentication method refused: ${why}`);
      }
      return safely(() => ctx.reject(methods));
    }
    const fingerprint = sshFingerprint(ctx.key.data);
    // The type inside the blob, not ctx.key.algo: for RSA that names the signature hash (rsa-sha2-256), not the key.
    const algo = keyTypeOf(ctx.key.data);
    const publicKey: AgentPublicKey = { algo, data: ctx.key.data, fingerprint, openSsh: `${algo} ${ctx.key.data.toString('base64')}` };
    let verdict: { agentId: string } | null = null;
    try {
      verdict = await this.opts.authorize(publicKey);
    } catch (err) {
      this.log.error({ remote: inbound.remote, fingerprint, err: errorMessage(err) }, 'authorize failed');
    }
    if (!verdict) {
      this.log.warn({ remote: inbound.remote, fingerprint }, 'unknown public key refused');
      return refuse();
    }
    // Without a signature the client only asks whether this key would do; it signs next.
    if (!ctx.signature || !ctx.blob) return safely(() => ctx.accept());
    const key = utils.parseKey(ctx.key.data);
    if (key instanceof Error || !key.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) {
      this.log.warn({ remote: inbound.remote, fingerprint, agentId: verdict.agentId }, 'bad signature for a registered key refused');
      return refuse();
    }
    inbound.agent = { agentId: verdict.agentId, fingerprint };
    safely(() => ctx.accept());
  }

  private async authenticatePassword(
    ctx: PasswordAuthContext,
    inbound: Inbound,
    authorizePassword: NonNullable<TunnelServerOptions['authorizePassword']>,
    refuse: () => void,
  ): Promise<void> {
    // The password is a bearer credential (an API token): it goes to authorizePassword and nowhere else, logs included.
    const where = { remote: inbound.remote, user: ctx.username };
    let verdict: { agentId: string } | null = null;
    try {
      verdict = await authorizePassword(ctx.username, ctx.password);
    } catch (err) {
      this.log.error({ ...where, err: errorMessage(err) }, 'authorizePassword failed');
    }
    if (!verdict) {
      this.log.warn(where, 'password refused');
      return refuse();
    }
    inbound.agent = { agentId: verdict.agentId, fingerprint: PASSWORD_FINGERPRINT };
    safely(() => ctx.accept());
  }

  private onAuthenticated(conn: Connection, inbound: Inbound): void {
    clearTimeout(inbound.loginGrace);
    const agent = inbound.agent;
    if (!agent || !this.listener) return void inbound.socket.destroy();
    const previous = this.sessions.get(agent.agentId);
    if (previous) this.endSession(previous, 'replaced by a new connection from the same agent');
    const session = new TunnelSession(agent.agentId, agent.fingerprint, inbound.remote, conn, inbound.socket, this.opts.allowDirect, this.log, this.opts.apiPort);
    inbound.session = session;
    this.sessions.set(agent.agentId, session);
    this.log.info({ agentId: agent.agentId, remote: inbound.remote, fingerprint: agent.fingerprint }, 'agent connected');
    this.notify('onConnected', () => this.opts.onConnected?.(agent.agentId, session));
  }

  /** Idempotent: the first caller reports the disconnect, later ones (socket close after close()) find it done. */
  private endSession(session: TunnelSession, reason: string): void {
    if (this.sessions.get(session.agentId) !== session) return session.release();
    this.sessions.delete(session.agentId);
    session.close(reason);
    this.log.info({ agentId: session.agentId, reason }, 'agent disconnected');
    this.notify('onDisconnected', () => this.opts.onDisconnected?.(session.agentId, reason));
  }

  private notify(name: string, call: () => void | Promise<void>): void {
    try {
      Promise.resolve(call()).catch((err: unknown) => this.log.error({ err: errorMessage(err) }, `${name} callback failed`));
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, `${name} callback failed`);
    }
  }
}

/** ssh2 throws from accept/reject once the connection is gone; by then nobody is waiting for the answer. */
function safely(reply: () => void): void {
  try {
    reply();
  } catch {
    /* connection already closed */
  }
}
