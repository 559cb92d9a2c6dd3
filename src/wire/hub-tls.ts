import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import * as tls from 'node:tls';

/**
 * How a client reaches the hub's API: over HTTPS with the hub's certificate pinned by its fingerprint (the hub
 * makes a self-signed one), over HTTPS checked against the system's CAs (a certificate the operator had signed),
 * or over plain HTTP to this host's loopback only. The certificate is checked before the socket is handed to
 * http, so no byte of a request, its token above all, reaches a server that is not the pinned one.
 */

/** `SHA256:` and the unpadded base64 of the SHA-256 of the certificate's DER: the form the hub's SSH host key fingerprint has. */
export function certificateFingerprint(der: Buffer): string {
  return `SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}`;
}

/** Ours (`SHA256:<base64>`) or openssl's (`AB:CD:..`, 64 hex digits, colons optional), as `SHA256:<base64>`; throws on anything else. */
export function normalizeFingerprint(text: string): string {
  const given = text.trim();
  const b64 = /^SHA256:([A-Za-z0-9+/]{43})=?$/.exec(given);
  if (b64) return `SHA256:${b64[1]}`;
  const hex = given.replace(/^sha256[: =]*(fingerprint=)?/i, '').replace(/:/g, '');
  if (/^[0-9a-fA-F]{64}$/.test(hex)) return `SHA256:${Buffer.from(hex, 'hex').toString('base64').replace(/=+$/, '')}`;
  throw new Error(`${JSON.stringify(text)} is not a certificate fingerprint: expected SHA256:<base64> as GET /api/v1/identity shows it, or the 64 hex digits of openssl's SHA-256 fingerprint`);
}

/** The server's certificate is not the pinned one, or (nothing pinned) does not verify: nothing was sent. */
export class HubCertificateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HubCertificateError';
  }
}

/** `localhost`, 127.0.0.0/8 and ::1: a request there never leaves this host. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  const v4 = host.startsWith('::ffff:') ? host.slice(7) : host;
  return isIP(v4) === 4 && v4.split('.')[0] === '127';
}

export interface HubEndpoint {
  /** The hub's API as the operator named it: `https://hub.example:8082` (or `http://127.0.0.1:8082`). */
  url: URL;
  /** Pinned certificate fingerprint; without one an https certificate must verify against the system's CAs. */
  fingerprint?: string | null;
}

/**
 * Refuses what would put a token on the network in clear (http:// to another host) and a fingerprint that could
 * not be checked (on http://); returns the fingerprint in its normal form.
 */
export function checkHubEndpoint(url: URL, fingerprint: string | null | undefined): string | null {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`the hub's URL must be https:// (or http:// on this host's loopback), not ${url.protocol}`);
  if (url.protocol === 'http:' && fingerprint) throw new Error(`a hub certificate fingerprint was given for ${url.origin}, which is not https://: use https://${url.host}`);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new Error(`refusing to send a token over plain HTTP to ${url.host}: use https://${url.host} and pin the hub's certificate (--hub-fingerprint, or SENDENSE_HUB_FINGERPRINT; GET /api/v1/identity on the hub shows it)`);
  }
  return fingerprint ? normalizeFingerprint(fingerprint) : null;
}

/** SENDENSE_HUB (default http://127.0.0.1:8082) and SENDENSE_HUB_FINGERPRINT, or the command's own flags, checked as checkHubEndpoint does. */
export function hubEndpoint(env: NodeJS.ProcessEnv, hub?: string, fingerprint?: string): HubEndpoint {
  const given = (hub ?? env.SENDENSE_HUB?.trim()) || 'http://127.0.0.1:8082';
  let url: URL;
  try {
    url = new URL(given.replace(/\/+$/, ''));
  } catch {
    throw new Error(`the hub's URL ${JSON.stringify(given)} is not a URL: give https://HOST:8082 (or http://127.0.0.1:8082)`);
  }
  return { url, fingerprint: checkHubEndpoint(url, (fingerprint ?? env.SENDENSE_HUB_FINGERPRINT?.trim()) || null) };
}

export interface HubConnectOptions {
  /** Where to connect; by default the URL's own host and port (a tunnel's local forward names another). */
  via?: { host: string; port: number };
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A connected socket to the hub, its certificate already checked when the URL is https. */
export function connectToHub(endpoint: HubEndpoint, options: HubConnectOptions = {}): Promise<Socket> {
  const { url } = endpoint;
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  const host = options.via?.host ?? hostname;
  const port = options.via?.port ?? Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const timeoutMs = options.timeoutMs ?? 30_000;
  const where = `${url.host}${options.via ? ` (through ${host}:${port})` : ''}`;
  const pinned = endpoint.fingerprint ? normalizeFingerprint(endpoint.fingerprint) : null;
  return new Promise<Socket>((resolve, reject) => {
    const socket: Socket =
      url.protocol === 'https:'
        ? tls.connect({
            host,
            port,
            // SNI takes names only; the identity check below is against the name the operator gave either way
            ...(isIP(hostname) ? {} : { servername: hostname }),
            // a pinned certificate is self-signed: the chain cannot verify, the fingerprint is checked on secureConnect
            rejectUnauthorized: pinned === null,
            checkServerIdentity: (_name, cert) => tls.checkServerIdentity(hostname, cert),
            ALPNProtocols: ['http/1.1'],
          })
        : connectTcp({ host, port });
    let settled = false;
    const finish = (error: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      if (error) {
        socket.destroy();
        reject(error);
      } else resolve(socket);
    };
    const onError = (error: Error) => {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      finish(/CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS_CERT/.test(code) ? new HubCertificateError(`the certificate of ${where} is not trusted (${error.message}); if it is your hub, pin it: --hub-fingerprint as GET /api/v1/identity or the hub's start log shows it`) : error);
    };
    const onAbort = () => finish(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'));
    const timer = setTimeout(() => finish(new Error(`${where} did not ${url.protocol === 'https:' ? 'complete a TLS handshake' : 'accept a connection'} within ${timeoutMs} ms`)), timeoutMs);
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('error', onError);
    if (url.protocol !== 'https:') return void socket.once('connect', () => finish(null));
    socket.once('secureConnect', () => {
      if (pinned === null) return finish(null);
      const cert = (socket as tls.TLSSocket).getPeerCertificate();
      const actual = cert?.raw ? certificateFingerprint(cert.raw) : 'none';
      if (actual === pinned) return finish(null);
      finish(new HubCertificateError(`the certificate of ${where} is ${actual}, not the pinned ${pinned}: refusing to send anything to it`));
    });
  });
}

/**
 * Whether host:port speaks TLS, and with which certificate: its fingerprint, or null when the handshake fails (a
 * plain HTTP listener answers a ClientHello with an HTTP 400, or closes). Only for a port whose far end is already
 * authenticated otherwise (a hub's API reached inside an SSH connection with a pinned host key): it trusts the
 * certificate it is shown.
 */
export function probeTls(host: string, port: number, timeoutMs = 10_000): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    const done = (fingerprint: string | null) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(fingerprint);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      done(cert?.raw ? certificateFingerprint(cert.raw) : null);
    });
    socket.once('error', () => done(null));
    socket.once('close', () => done(null));
  });
}

export interface HubRequest {
  method: string;
  /** Path and query, `/api/v1/...`. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** One request on its own connection (closed after the answer): the answer's stream, not yet read. */
export async function hubRequest(endpoint: HubEndpoint, request: HubRequest, options: HubConnectOptions = {}): Promise<http.IncomingMessage> {
  const socket = await connectToHub(endpoint, options);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        method: request.method,
        host: endpoint.url.hostname.replace(/^\[|\]$/g, ''),
        port: endpoint.url.port || undefined,
        path: request.path,
        headers: { ...(request.headers ?? {}), ...(request.body === undefined ? {} : { 'Content-Length': String(Buffer.byteLength(request.body)) }) },
        createConnection: () => socket,
        signal: options.signal,
      },
      resolve,
    );
    req.on('error', (error) => {
      socket.destroy();
      reject(error);
    });
    req.end(request.body);
  });
}

/** The whole answer as bytes. */
export async function readAll(res: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const NULL_BODY_STATUS = new Set([101, 204, 205, 304]);

/** fetch() with the hub's certificate pinned: the same Response, for callers written against fetch (streamed downloads). */
export async function hubFetch(endpoint: HubEndpoint, request: HubRequest, options: HubConnectOptions = {}): Promise<Response> {
  const res = await hubRequest(endpoint, request, options);
  const headers = new Headers();
  for (const [name, value] of Object.entries(res.headers)) {
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else if (value !== undefined) headers.set(name, value);
  }
  const status = res.statusCode ?? 502;
  const body = NULL_BODY_STATUS.has(status) || request.method === 'HEAD' ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
  return new Response(body, { status, statusText: res.statusMessage, headers });
}
