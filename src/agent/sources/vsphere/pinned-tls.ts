import type { ClientRequestArgs } from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import type { PeerCertificate, TLSSocket } from 'node:tls';

/**
 * The server's certificate is not the one pinned, or (nothing pinned) does not verify against the system's CAs.
 * It names both thumbprints the operator could pin, in the `AA:BB:..` form vSphere itself shows.
 */
export class VsphereCertificateError extends Error {
  constructor(
    message: string,
    readonly sha1: string,
    readonly sha256: string,
  ) {
    super(message);
    this.name = 'VsphereCertificateError';
  }
}

export interface PinnedAgentOptions extends https.AgentOptions {
  /** SHA-1 (40 hex digits) or SHA-256 (64) of the server's certificate, `AA:BB:..` or plain hex, either case. */
  thumbprint?: string;
  /** Limit on the TCP connect and TLS handshake together. */
  handshakeTimeoutMs?: number;
}

/** The thumbprint as lower-case hex without separators; throws on anything that is not one. */
export function normalizeThumbprint(thumbprint: string): string {
  const hex = thumbprint.trim().replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(hex) || (hex.length !== 40 && hex.length !== 64)) {
    throw new Error(`"${thumbprint}" is not a certificate thumbprint: expected the SHA-1 (40 hex digits) or SHA-256 (64 hex digits) of the certificate, e.g. AA:BB:...`);
  }
  return hex;
}

const colons = (hex: string) => hex.toUpperCase().replace(/(..)(?!$)/g, '$1:');

/**
 * An https agent (keep-alive) that hands a connection to http only after it checked the server's certificate, so
 * no byte of a request (a Login's password) reaches a server that is not the pinned one. Node calls
 * checkServerIdentity only after the chain verified, which a vCenter's self-signed certificate never does: the
 * chain is not enforced by TLS itself (rejectUnauthorized false) and the check is made here on secureConnect —
 * the pinned thumbprint when there is one, else the chain and host name as normal TLS would.
 *
 * TLS sessions are not cached: a resumed session skips the identity check and would show the certificate of
 * the session, not of the server answering now.
 */
export class PinnedAgent extends https.Agent {
  private readonly pinned: { algorithm: 'sha1' | 'sha256'; hex: string } | null;
  private readonly handshakeTimeoutMs: number;

  constructor({ thumbprint, handshakeTimeoutMs = 60_000, ...options }: PinnedAgentOptions = {}) {
    super({ keepAlive: true, ...options, maxCachedSessions: 0, rejectUnauthorized: false });
    const hex = thumbprint ? normalizeThumbprint(thumbprint) : null;
    this.pinned = hex ? { algorithm: hex.length === 40 ? 'sha1' : 'sha256', hex } : null;
    this.handshakeTimeoutMs = handshakeTimeoutMs;
  }

  override createConnection(options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    // https.Agent's own: tls.connect with the agent's options (rejectUnauthorized false), answered at once
    const socket = super.createConnection(options) as TLSSocket;
    const where = `${options.host ?? options.hostname ?? 'localhost'}:${options.port ?? 443}`;
    let done = false;
    const finish = (error: Error | null) => {
      if (done) return;
      done = true;
      socket.off('secureConnect', onSecure);
      socket.off('error', onError);
      socket.setTimeout(0);
      if (error) socket.destroy();
      // http's own listeners take over the socket from here; before it had one, an error was ours to report
      callback!(error, socket);
    };
    const onError = (error: Error) => finish(error);
    const onSecure = () => finish(this.check(socket, where));
    socket.on('error', onError);
    socket.once('secureConnect', onSecure);
    socket.setTimeout(this.handshakeTimeoutMs, () => finish(new Error(`the connection to ${where} did not complete its TLS handshake within ${this.handshakeTimeoutMs} ms`)));
    return undefined;
  }

  private check(socket: TLSSocket, where: string): VsphereCertificateError | null {
    const cert: PeerCertificate | undefined = socket.getPeerCertificate();
    if (!cert || !cert.fingerprint256) return new VsphereCertificateError(`${where} presented no certificate`, '', '');
    const sha1 = cert.fingerprint.toUpperCase();
    const sha256 = cert.fingerprint256.toUpperCase();
    const names = `its SHA-1 thumbprint is ${sha1} and its SHA-256 thumbprint is ${sha256}`;
    if (this.pinned) {
      const actual = (this.pinned.algorithm === 'sha1' ? sha1 : sha256).replace(/:/g, '').toLowerCase();
      if (actual === this.pinned.hex) return null;
      return new VsphereCertificateError(`the certificate of ${where} is not the pinned one (${this.pinned.algorithm.toUpperCase()} ${colons(this.pinned.hex)}): ${names}`, sha1, sha256);
    }
    if (socket.authorized) return null;
    return new VsphereCertificateError(
      `the certificate of ${where} is not trusted by this system (${String(socket.authorizationError)}) and no thumbprint is pinned; if it is the right server, pin its thumbprint: ${names}`,
      sha1,
      sha256,
    );
  }
}
