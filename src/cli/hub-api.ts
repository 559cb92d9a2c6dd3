import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The CLI's connection to the hub: SENDENSE_HUB and SENDENSE_TOKEN, or the data dir's admin token. */
export class HubApi {
  readonly base: string;
  private readonly token: string;

  constructor(env: NodeJS.ProcessEnv) {
    this.base = (env.SENDENSE_HUB || 'http://127.0.0.1:8082').replace(/\/+$/, '');
    const file = join(resolve(env.SENDENSE_DATA_DIR || './var'), 'admin.token');
    const token = env.SENDENSE_TOKEN || (existsSync(file) ? readFileSync(file, 'utf8').trim() : '');
    if (!token) throw new Error(`no token: set SENDENSE_TOKEN or run where ${file} exists`);
    this.token = token;
  }

  async call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const parsed = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${Array.isArray(parsed?.message) ? parsed.message.join('; ') : (parsed?.message ?? text)}`);
    return parsed as T;
  }
}
