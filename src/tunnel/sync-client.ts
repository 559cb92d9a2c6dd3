import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { AuthenticationType, Client, PasswordAuthMethod } from 'ssh2';
import { batchWrites } from './batch-writes';
import { checkPinnedHostKey, HostKeyVerdict } from './host-key-trust';
import { listenLocalForward, LocalForward } from './local-forward';
import { CHANNEL_OPEN_TIMEOUT_MS, endClient, openDirectChannel } from './ssh-client-helpers';
import { errorMessage, silentLogger, TunnelLogger } from './tunnel-logger';
import { HUB_API_DESTINATION } from './tunnel-session';

export interface SyncTunnelOptions {
  host: string;
  port: number;
  /** An API token issued by the hub being dialled, sent as the SSH password. */
  password: string;
  /** Default `sendense-sync`. */
  username?: string;
  /**
   * `SHA256:...` of that hub's host key. Required, not trusted on first use: the host key is
   * checked before authentication, so a wrong hub is dropped before it ever sees the token.
   */
  hostKeyFingerprint: string;
  /** Limit for TCP connect + handshake + authentication; default 20 s. */
  readyTimeoutMs?: number;
  /** A silent hub is dropped after keepaliveIntervalMs * (keepaliveCountMax + 1): 15 s by default. */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  log?: TunnelLogger;
}

export interface SyncTunnel {
  /** A raw channel to the hub's HTTP API (the `sendense-api` destination); rejects when the hub refuses it. */
  openApi(timeoutMs?: number): Promise<Duplex>;
  /** A 127.0.0.1 port leading to the hub's API, for fetch and friends; closed by its close(), by close() or when the connection ends. */
  forwardApi(): Promise<LocalForward>;
  /** Ends the connection; resolves once it is closed. */
  close(): Promise<void>;
  /** Resolves with the reason once the connection has ended, whoever ended it. */
  readonly closed: Promise<string>;
}

/**
 * One SSH connection from a peer hub to this hub's tunnel port, authenticated with an API token,
 * used only to reach the hub's HTTP API. Unlike TunnelClient it does not reconnect and offers no
 * reverse forward: sync is a job with a beginning and an end, and the caller decides on retries.
 */
export function connectSyncTunnel(opts: SyncTunnelOptions): Promise<SyncTunnel> {
  const hub = `${opts.host}:${opts.port}`;
  const log = opts.log ?? silentLogger;
  const username = opts.username ?? 'sendense-sync';
  const client = new Client();
  // Ours, not ssh2's: once ssh2 has half-closed its socket, its destroy() is a no-op.
  const socket = batchWrites(connect({ host: opts.host, port: opts.port }));
  socket.setNoDelay(true);
  const forwards = new Set<LocalForward>();
  let endReason: string | undefined;
  let open = false;
  let ended = false;
  let reportClosed!: (reason: string) => void;
  const closed = new Promise<string>((resolve) => (reportClosed = resolve));

  const openApi = (timeoutMs = CHANNEL_OPEN_TIMEOUT_MS): Promise<Duplex> => {
    if (ended) return Promise.reject(new Error(`sync tunnel to ${hub} is closed`));
    return openDirectChannel(client, HUB_API_DESTINATION, 0, 'its API', timeoutMs);
  };

  const tunnel: SyncTunnel = {
    openApi,
    forwardApi: async () => {
      if (ended) throw new Error(`sync tunnel to ${hub} is closed`);
      const forward = await listenLocalForward(
        () => openApi(),
        (err) => log.warn({ hub, err: errorMessage(err) }, 'local forward could not open a channel to the hub API'),
      );
      // Without reconnects, a port that outlives the connection would only accept and then drop.
      if (ended) {
        await forward.close();
        throw new Error(`sync tunnel to ${hub} is closed`);
      }
      forwards.add(forward);
      const close = forward.close;
      forward.close = () => {
        forwards.delete(forward);
        return close();
      };
      return forward;
    },
    close: async () => {
      endReason ??= 'closed by this side';
      await Promise.all([...forwards].map((forward) => forward.close()));
      if (!ended) await endClient(client, socket);
    },
    closed,
  };

  // What the hub offered after refusing our password: tells a wrong token from a hub that takes no passwords.
  let offered: AuthenticationType[] | undefined;
  let passwordSent = false;

  return new Promise<SyncTunnel>((resolve, reject) => {
    client.on('error', (err: Error & { level?: string }) => {
      if (err.level === 'client-authentication') {
        endReason ??= offered && !offered.includes('password')
          ? `authentication refused: hub ${hub} does not accept password authentication (it offers ${offered.join(', ') || 'nothing'})`
          : `authentication refused: hub ${hub} rejected the password for ${username} (wrong, expired or revoked token?)`;
      }
      endReason ??= err.message;
      log.warn({ hub, err: err.message }, 'sync tunnel connection error');
      // Every error before 'ready' is final, and a hub that stopped talking would never finish ssh2's half-close.
      if (!open) setImmediate(() => socket.destroy());
    });
    client.on('ready', () => {
      open = true;
      log.info({ hub, username }, 'sync tunnel connected');
      resolve(tunnel);
    });
    client.on('close', () => {
      ended = true;
      socket.destroy();
      for (const forward of [...forwards]) void forward.close();
      const reason = endReason ?? 'connection closed';
      if (open) log.info({ hub, reason }, 'sync tunnel closed');
      else reject(new Error(`sync tunnel to ${hub} failed: ${reason}`));
      reportClosed(reason);
    });
    client.connect({
      sock: socket,
      username,
      // One password attempt and nothing else: no "none" probe, no keys, no keyboard-interactive.
      // Returning false (ssh2 reads the return value) ends authentication as failed.
      authHandler: (methodsLeft) => {
        if (passwordSent) {
          offered = methodsLeft ?? [];
          return false;
        }
        passwordSent = true;
        const method: PasswordAuthMethod = { type: 'password', username, password: opts.password };
        return method;
      },
      hostVerifier: (key: Buffer) => {
        const verdict: HostKeyVerdict = checkPinnedHostKey(key, opts.hostKeyFingerprint);
        if (!verdict.ok) {
          endReason ??= verdict.reason;
          log.error({ hub }, verdict.reason);
        }
        return verdict.ok;
      },
      keepaliveInterval: opts.keepaliveIntervalMs ?? 5_000,
      keepaliveCountMax: opts.keepaliveCountMax ?? 2,
      readyTimeout: opts.readyTimeoutMs ?? 20_000,
    });
  });
}
