import { readFileSync } from 'node:fs';
import type { IncomingMessage, RequestOptions } from 'node:http';
import { join, resolve } from 'node:path';

/**
 * The CLI's connection to the hub: SENDENSE_HUB and SENDENSE_TOKEN, or the data dir's admin token.
 * Requests go through node:http rather than fetch(): fetch loads undici on first use, which costs
 * a client command more start-up time than everything else it loads together.
 */
export class HubApi {
  readonly base: string;
  private readonly token: string;

  constructor(env: NodeJS.ProcessEnv) {
    this.base = (env.SENDENSE_HUB || 'http://127.0.0.1:8082').replace(/\/+$/, '');
    this.token = hubToken(env);
  }

  async call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { status, text } = await this.send(method, path, payload);
    const parsed = text ? JSON.parse(text) : null;
    if (status < 200 || status >= 300) throw new Error(`${method} ${path}: ${status} ${Array.isArray(parsed?.message) ? parsed.message.join('; ') : (parsed?.message ?? text)}`);
    return parsed as T;
  }

  private send(method: string, path: string, payload: string | undefined): Promise<{ status: number; text: string }> {
    const url = new URL(`${this.base}${path}`);
    const { request } = url.protocol === 'https:' ? (require('node:https') as typeof import('node:https')) : (require('node:http') as typeof import('node:http'));
    const options: RequestOptions = {
      method,
      headers: {
        Authorization: `Bearer ${this.token}`,
        'Content-Type': 'application/json',
        ...(payload === undefined ? {} : { 'Content-Length': Buffer.byteLength(payload) }),
      },
    };
    return new Promise((resolvePromise, reject) => {
      const req = request(url, options, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', (error) => reject(new Error(`cannot reach the hub at ${this.base}: ${(error as NodeJS.ErrnoException).code ?? error.message}`)));
      req.end(payload);
    });
  }
}

/** SENDENSE_TOKEN, else the admin token the hub wrote into its data dir (SENDENSE_DATA_DIR, default ./var). */
export function hubToken(env: NodeJS.ProcessEnv): string {
  const given = env.SENDENSE_TOKEN?.trim();
  if (given) return given;
  const file = join(resolve(env.SENDENSE_DATA_DIR?.trim() || './var'), 'admin.token');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new Error(`no token: set SENDENSE_TOKEN, or make the admin token file ${file} readable (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
}
