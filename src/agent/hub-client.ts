import { type HubEndpoint, hubFetch, type HubRequest } from '../wire/hub-tls';

/**
 * The agent's calls to the hub API, made through a local forward into the SSH tunnel, in the scheme the agent was
 * registered with: over HTTPS the hub's certificate is checked as at registration (pinned fingerprint, or the
 * hub's name against the system's CAs), whatever port the forward has. Each call has a time limit: a call that
 * never got an answer (a tunnel channel the hub never opened) held an instant recovery's last reports, and with
 * them the removal of its proxies, for ever.
 */
/** The hub answered, and not with success: its status tells whether the same call may be taken later. */
export class HubAnswerError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class HubClient {
  constructor(
    private readonly hub: HubEndpoint,
    /** The tunnel's local forward to the hub's API port. */
    private readonly forwardPort: () => number,
    private readonly token: string,
    /** JSON calls; a binary body or answer (digests of a large disk) gets ten times as long. */
    private readonly timeoutMs = 30_000,
  ) {}

  async send(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<unknown> {
    const res = await this.fetch({ method, path, headers: { ...headers, Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) }, this.timeoutMs);
    const text = await res.text();
    if (!res.ok) throw new HubAnswerError(res.status, `hub answered ${res.status} to ${method} ${path}: ${text.slice(0, 500)}`);
    return text ? JSON.parse(text) : null;
  }

  /** A binary body (block digests), sent as application/octet-stream. */
  async put(path: string, body: Buffer, headers: Record<string, string> = {}): Promise<void> {
    const res = await this.fetch({ method: 'PUT', path, headers: { ...headers, Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/octet-stream' }, body }, 10 * this.timeoutMs);
    if (!res.ok) throw new Error(`hub answered ${res.status} to PUT ${path}: ${(await res.text()).slice(0, 500)}`);
  }

  /** A binary answer (a point's block digests). */
  async get(path: string, headers: Record<string, string> = {}): Promise<Buffer> {
    const res = await this.fetch({ method: 'GET', path, headers: { ...headers, Authorization: `Bearer ${this.token}` } }, 10 * this.timeoutMs);
    if (!res.ok) throw new Error(`hub answered ${res.status} to GET ${path}: ${(await res.text()).slice(0, 500)}`);
    return Buffer.from(await res.arrayBuffer());
  }

  private fetch(request: HubRequest, timeoutMs: number): Promise<Response> {
    const signal = AbortSignal.timeout(timeoutMs);
    return hubFetch(this.hub, { ...request, path: `${this.hub.url.pathname.replace(/\/+$/, '')}${request.path}` }, { via: { host: '127.0.0.1', port: this.forwardPort() }, timeoutMs, signal });
  }
}
