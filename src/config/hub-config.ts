import { isIP } from 'node:net';
import { resolve } from 'node:path';

export const HUB_CONFIG = Symbol('HUB_CONFIG');

export interface HubConfig {
  dataDir: string;
  databaseUrl: string | null;
  eventStoreUrl: string | null;
  apiPort: number;
  apiBind: string;
  adminToken: string | null;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/** Reads and checks every setting at once, so an operator sees all mistakes in one go. */
export function loadHubConfig(env: NodeJS.ProcessEnv): HubConfig {
  const problems: string[] = [];
  const str = (name: string) => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? null : v.trim();
  };

  const port = (name: string, fallback: number) => {
    const raw = str(name);
    if (raw === null) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n < 1 || n > 65535) {
      problems.push(`${name} must be a TCP port number between 1 and 65535, got ${JSON.stringify(raw)}`);
      return fallback;
    }
    return n;
  };

  const databaseUrl = str('DATABASE_URL');
  if (databaseUrl !== null && !/^postgres(ql)?:\/\/[^\s]+$/.test(databaseUrl)) {
    problems.push(`DATABASE_URL must be a postgres:// or postgresql:// URL, got ${JSON.stringify(redact(databaseUrl))}; unset it to use the embedded database`);
  }

  const eventStoreUrl = str('EVENTSTORE_URL');
  if (eventStoreUrl !== null && !/^esdb(\+discover)?:\/\/[^\s]+$/.test(eventStoreUrl)) {
    problems.push(`EVENTSTORE_URL must be an esdb:// or esdb+discover:// connection string, got ${JSON.stringify(redact(eventStoreUrl))}; unset it to keep events in PostgreSQL`);
  }

  const apiBind = str('SENDENSE_API_BIND') ?? '127.0.0.1';
  if (isIP(apiBind) === 0) problems.push(`SENDENSE_API_BIND must be an IP address such as 127.0.0.1 or 0.0.0.0, got ${JSON.stringify(apiBind)}`);

  const adminToken = str('SENDENSE_ADMIN_TOKEN');
  if (adminToken !== null && (adminToken.length < 16 || !/^[\x21-\x7e]+$/.test(adminToken))) {
    problems.push('SENDENSE_ADMIN_TOKEN must be at least 16 printable characters without spaces');
  }

  const logLevel = (str('SENDENSE_LOG_LEVEL') ?? 'info') as HubConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`SENDENSE_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);

  const config: HubConfig = {
    dataDir: resolve(str('SENDENSE_DATA_DIR') ?? './var'),
    databaseUrl,
    eventStoreUrl,
    apiPort: port('SENDENSE_API_PORT', 8082),
    apiBind,
    adminToken,
    logLevel,
  };
  if (problems.length) throw new ConfigError(problems);
  return config;
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
