import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { HubEndpoint } from '../wire/hub-tls';

/**
 * The CLI's connection to the hub: SENDENSE_HUB (https:// with SENDENSE_HUB_FINGERPRINT pinning the hub's
 * certificate, or http:// on loopback) and SENDENSE_TOKEN, or the data dir's admin token.
 * Requests go through node:http rather than fetch(): fetch loads undici on first use, which costs
 * a client command more start-up time than everything else it loads together.
 */
export class HubApi {
  readonly base: string;
  readonly endpoint: HubEndpoint;
  private readonly token: string;

  constructor(env: NodeJS.ProcessEnv) {
    this.endpoint = (require('../wire/hub-tls') as typeof import('../wire/hub-tls')).hubEndpoint(env);
    this.base = this.endpoint.url.href.replace(/\/+$/, '');
    this.token = hubToken(env);
  }

  async call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { status, text } = await this.send(method, path, payload);
    const parsed = text ? JSON.parse(text) : null;
    if (status < 200 || status >= 300) throw new Error(`${method} ${path}: ${status} ${Array.isArray(parsed?.message) ? parsed.message.join('; ') : (parsed?.message ?? text)}`);
    return parsed as T;
  }

  private async send(method: string, path: string, payload: string | undefined): Promise<{ status: number; text: string }> {
    const { hubRequest, readAll, HubCertificateError } = require('../wire/hub-tls') as typeof import('../wire/hub-tls');
    try {
      const res = await hubRequest(this.endpoint, { method, path: `${this.endpoint.url.pathname.replace(/\/+$/, '')}${path}`, headers: { Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/json' }, body: payload });
      return { status: res.statusCode ?? 0, text: (await readAll(res)).toString('utf8') };
    } catch (error) {
      if (error instanceof HubCertificateError) throw error;
      throw new Error(`cannot reach the hub at ${this.base}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
}

/** `--hub-fingerprint F` (or `=F`) anywhere on the command line is for every command that talks to the hub: it becomes SENDENSE_HUB_FINGERPRINT. */
export function takeHubFingerprint(argv: string[], env: NodeJS.ProcessEnv): string[] {
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    if (flag !== '--hub-fingerprint') {
      rest.push(argv[i]);
      continue;
    }
    const value = inline ?? argv[++i];
    if (!value) throw new Error('--hub-fingerprint needs the fingerprint of the hub\'s certificate (SHA256:...)');
    env.SENDENSE_HUB_FINGERPRINT = value;
  }
  return rest;
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
