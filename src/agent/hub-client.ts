/**
 * The agent's calls to the hub API, made through a local forward into the SSH tunnel. Each has a time limit: a
 * call that never got an answer (a tunnel channel the hub never opened) held an instant recovery's last reports,
 * and with them the removal of its proxies, for ever.
 */
export class HubClient {
  constructor(
    private readonly baseUrl: () => string,
    private readonly token: string,
    /** JSON calls; a binary body or answer (digests of a large disk) gets ten times as long. */
    private readonly timeoutMs = 30_000,
  ) {}

  async send(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<unknown> {
    const res = await fetch(`${this.baseUrl()}${path}`, {
      method,
      headers: { ...headers, Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`hub answered ${res.status} to ${method} ${path}: ${text.slice(0, 500)}`);
    return text ? JSON.parse(text) : null;
  }

  /** A binary body (block digests), sent as application/octet-stream. */
  async put(path: string, body: Buffer, headers: Record<string, string> = {}): Promise<void> {
    const res = await fetch(`${this.baseUrl()}${path}`, {
      method: 'PUT',
      headers: { ...headers, Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/octet-stream' },
      body,
      signal: AbortSignal.timeout(10 * this.timeoutMs),
    });
    if (!res.ok) throw new Error(`hub answered ${res.status} to PUT ${path}: ${(await res.text()).slice(0, 500)}`);
  }

  /** A binary answer (a point's block digests). */
  async get(path: string, headers: Record<string, string> = {}): Promise<Buffer> {
    const res = await fetch(`${this.baseUrl()}${path}`, { headers: { ...headers, Authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(10 * this.timeoutMs) });
    if (!res.ok) throw new Error(`hub answered ${res.status} to GET ${path}: ${(await res.text()).slice(0, 500)}`);
    return Buffer.from(await res.arrayBuffer());
  }
}
