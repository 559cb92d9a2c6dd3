import { connectSyncTunnel, LocalForward, SyncTunnel } from '../../tunnel';
import type { OpenedPointExport } from '../../disk-images/point-export.workflow';
import { isSafeIdentifier } from '../../wire/identifiers';
import { type HubEndpoint, hubFetch, probeTls } from '../../wire/hub-tls';
import type { HubIdentity, SyncPointList } from '../sync-protocol';

export interface RemoteAddress {
  host: string;
  port: number;
  fingerprint: string;
}

/** An answer other than 2xx from the remote hub, with its status (a 404 of an export already gone is no failure). */
export class RemoteHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const CALL_TIMEOUT_MS = 60_000;

/**
 * The other hub, reached through one SSH connection to its tunnel port: its host key pinned to the registered
 * fingerprint, the sync token as the password, and its HTTP API on a local forward into that connection.
 * Disk data does not take this path: it is read from the remote's point exports over NBD with TLS, with the
 * pre-shared key those exports hand out over this connection.
 */
export class RemoteConnection {
  private constructor(
    private readonly remote: RemoteAddress,
    private readonly token: string,
    private readonly tunnel: SyncTunnel,
    private readonly forward: LocalForward,
    private readonly api: HubEndpoint,
  ) {}

  static async open(remote: RemoteAddress, token: string): Promise<RemoteConnection> {
    const tunnel = await connectSyncTunnel({ host: remote.host, port: remote.port, password: token, hostKeyFingerprint: remote.fingerprint });
    try {
      const forward = await tunnel.forwardApi();
      // The remote's API speaks HTTPS when its operator turned TLS on, plain HTTP on a loopback-only API. Either way
      // its far end is the remote hub's own process (the SSH host key pinned above), which connects the channel to
      // its API on its loopback: there is nothing between to downgrade, so the scheme is found out, not configured,
      // and the certificate seen first is held for the rest of this connection.
      const fingerprint = await probeTls('127.0.0.1', forward.port);
      const api: HubEndpoint = fingerprint ? { url: new URL('https://127.0.0.1'), fingerprint } : { url: new URL('http://127.0.0.1') };
      return new RemoteConnection(remote, token, tunnel, forward, api);
    } catch (error) {
      await tunnel.close();
      throw error;
    }
  }

  /** Resolves with the reason when the SSH connection ends. */
  get closed(): Promise<string> {
    return this.tunnel.closed;
  }

  identity(): Promise<HubIdentity> {
    return this.json('GET', '/api/v1/identity');
  }

  session(): Promise<{ actor: string; role: string }> {
    return this.json('GET', '/api/v1/session');
  }

  points(repositoryId: string | null): Promise<SyncPointList> {
    return this.json('GET', `/api/v1/sync/restore-points${repositoryId ? `?repositoryId=${encodeURIComponent(repositoryId)}` : ''}`);
  }

  digests(restorePointId: string, diskId: string): Promise<Buffer> {
    return this.bytes(`/api/v1/sync/restore-points/${encodeURIComponent(restorePointId)}/disks/${encodeURIComponent(diskId)}/digests`);
  }

  configuration(restorePointId: string): Promise<Buffer> {
    return this.bytes(`/api/v1/sync/restore-points/${encodeURIComponent(restorePointId)}/configuration`);
  }

  /**
   * Read-only TLS exports of the point's disks on the remote. The host the answer names is not used: the disks are
   * read from the address this hub pinned the remote's host key at, so a remote cannot make this hub dial a host of
   * its choosing (another hub's exports, a service on this hub's network). Only the port and export name are taken.
   */
  async openExport(restorePointId: string): Promise<OpenedPointExport> {
    const opened = await this.json<OpenedPointExport>('POST', `/api/v1/restore-points/${encodeURIComponent(restorePointId)}/exports`, { tls: true });
    if (!opened || typeof opened !== 'object' || typeof opened.exportId !== 'string' || !Array.isArray(opened.disks)) throw new Error(`the remote hub answered the export of ${restorePointId} without an export id and its disks`);
    // the export id goes back into a URL path (encoded) and onto the job's stream: an id, nothing else
    if (!isSafeIdentifier(opened.exportId)) throw new Error(`the remote hub named the export of ${restorePointId} ${JSON.stringify(String(opened.exportId).slice(0, 80))}, not an identifier`);
    for (const d of opened.disks) {
      if (!Number.isInteger(d?.port) || d.port < 1 || d.port > 65535) throw new Error(`the remote hub served a disk of ${restorePointId} on port ${JSON.stringify(d?.port)}, not a TCP port`);
      if (typeof d.exportName !== 'string' || d.exportName.length > 4096 || d.exportName.includes('\0')) throw new Error(`the remote hub served a disk of ${restorePointId} under an unusable export name`);
    }
    return { ...opened, disks: opened.disks.map((d) => ({ ...d, host: this.remote.host })) };
  }

  /** Closing an export that is gone (the remote restarted since) is not an error. */
  async closeExport(exportId: string): Promise<void> {
    await this.json('DELETE', `/api/v1/restore-point-exports/${encodeURIComponent(exportId)}`).catch((error: unknown) => {
      if (!(error instanceof RemoteHttpError && error.status === 404)) throw error;
    });
  }

  async close(): Promise<void> {
    await this.forward.close();
    await this.tunnel.close();
  }

  private async call(method: string, path: string, body?: unknown): Promise<Response> {
    const res = await hubFetch(
      this.api,
      {
        method,
        path,
        headers: { Authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      },
      { via: { host: '127.0.0.1', port: this.forward.port }, timeoutMs: CALL_TIMEOUT_MS, signal: AbortSignal.timeout(CALL_TIMEOUT_MS) },
    );
    if (!res.ok) throw new RemoteHttpError(res.status, `the remote hub answered ${res.status} to ${method} ${path}: ${(await res.text()).slice(0, 500)}`);
    return res;
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const text = await (await this.call(method, path, body)).text();
    return (text ? JSON.parse(text) : null) as T;
  }

  private async bytes(path: string): Promise<Buffer> {
    return Buffer.from(await (await this.call('GET', path)).arrayBuffer());
  }
}
