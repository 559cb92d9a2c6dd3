import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

export const HUB_CONFIG = Symbol('HUB_CONFIG');

export interface HubConfig {
  dataDir: string;
  databaseUrl: string | null;
  eventStoreUrl: string | null;
  apiPort: number;
  apiBind: string;
  /**
   * HTTPS on the API listener: the certificate and key the operator gave, or (both null) the one the hub makes in
   * its data dir. Off only on a loopback bind: beyond it, tokens would cross the network in clear.
   */
  apiTls: { enabled: boolean; certFile: string | null; keyFile: string | null };
  adminToken: string | null;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  /** Inclusive range of TCP ports the hub leases to NBD exports. */
  nbdPorts: { first: number; last: number };
  /** Where backup targets listen for agents (TLS with a per-lease key); other exports stay on 127.0.0.1. */
  nbdBind: string;
  /** Names the per-host lease stream; hubs on one host share it, so they never lease one port twice. */
  hostId: string;
  /** Files under these directories may be exported (repositories add theirs). */
  exportRoots: string[];
  /** How often repository capacity is sampled. */
  capacityIntervalMs: number;
  /** Free space below this share of a repository is a RepositoryLowSpace event. */
  lowSpacePercent: number;
  /** Embedded SSH server agents dial into; 0 picks a free port (tests). */
  sshPort: number;
  sshBind: string;
  maxConcurrentBackups: number;
  /** A restore mount nobody touched for this long is released. */
  restoreIdleMs: number;
  /** How long a deleted or pruned restore point stays in the recycle bin before its files are removed; 0: removed at once. */
  deleteGraceMs: number;
  /** How often the hub looks for recycled points whose grace ended. */
  recyclePurgeIntervalMs: number;
  /** How often the hub looks for work whose hub process is gone (src/projection-runner/hub-liveness.ts). */
  goneHubCheckMs: number;
  /** How long a hub process must have been found gone at every look before its work is taken over. */
  goneHubAfterMs: number;
}

/** A week: anything longer is a forgotten mount, not a restore. */
export const MAX_RESTORE_IDLE_S = 7 * 24 * 3600;

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

  const int = (name: string, fallback: number, min: number, max: number, unit = '') => {
    const raw = str(name);
    if (raw === null) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name} must be an integer${unit ? ` number of ${unit}` : ''} from ${min} to ${max}, got ${JSON.stringify(raw)}`);
      return fallback;
    }
    return Number(raw);
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

  const apiTls = apiTlsSetting(str, apiBind, problems);

  const adminToken = str('SENDENSE_ADMIN_TOKEN');
  if (adminToken !== null && (adminToken.length < 16 || !/^[\x21-\x7e]+$/.test(adminToken))) {
    problems.push('SENDENSE_ADMIN_TOKEN must be at least 16 printable characters without spaces');
  }

  const logLevel = (str('SENDENSE_LOG_LEVEL') ?? 'info') as HubConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`SENDENSE_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);

  const nbdPorts = portRange(str('SENDENSE_NBD_PORTS') ?? '10100-10200', problems);
  const nbdBind = str('SENDENSE_NBD_BIND') ?? '0.0.0.0';
  if (isIP(nbdBind) === 0) problems.push(`SENDENSE_NBD_BIND must be an IP address, got ${JSON.stringify(nbdBind)}`);
  const hostId = str('SENDENSE_HOST_ID') ?? hostname();
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(hostId)) problems.push(`SENDENSE_HOST_ID must be 1-63 characters of A-Z a-z 0-9 . - , got ${JSON.stringify(hostId)}`);
  const dataDir = resolve(str('SENDENSE_DATA_DIR') ?? './var');
  const exportRoots = (str('SENDENSE_EXPORT_ROOTS') ?? join(dataDir, 'repositories')).split(':').filter(Boolean);
  for (const root of exportRoots) if (!isAbsolute(root)) problems.push(`SENDENSE_EXPORT_ROOTS entries must be absolute paths, got ${JSON.stringify(root)}`);

  const capacityIntervalS = int('SENDENSE_CAPACITY_INTERVAL_S', 300, 1, 86_400);
  const lowSpacePercent = int('SENDENSE_LOW_SPACE_PERCENT', 10, 0, 99);

  const sshPort = int('SENDENSE_SSH_PORT', 2222, 0, 65535);
  const sshBind = str('SENDENSE_SSH_BIND') ?? '0.0.0.0';
  if (isIP(sshBind) === 0) problems.push(`SENDENSE_SSH_BIND must be an IP address, got ${JSON.stringify(sshBind)}`);
  const maxConcurrentBackups = int('SENDENSE_MAX_CONCURRENT_BACKUPS', 4, 1, 1000);
  const restoreIdleS = int('SENDENSE_RESTORE_IDLE_S', 3600, 1, MAX_RESTORE_IDLE_S, 'seconds');
  const deleteGraceDays = int('SENDENSE_DELETE_GRACE_DAYS', 7, 0, 3650);
  const recyclePurgeIntervalS = int('SENDENSE_RECYCLE_PURGE_INTERVAL_S', 300, 1, 86_400);
  const goneHubCheckS = int('SENDENSE_GONE_HUB_CHECK_S', 30, 1, 3600);
  const goneHubAfterS = int('SENDENSE_GONE_HUB_AFTER_S', 600, 1, 7 * 86_400);

  const config: HubConfig = {
    dataDir,
    databaseUrl,
    eventStoreUrl,
    apiPort: port('SENDENSE_API_PORT', 8082),
    apiBind,
    apiTls,
    adminToken,
    logLevel,
    nbdPorts,
    nbdBind,
    hostId,
    exportRoots: exportRoots.map((r) => resolve(r)),
    capacityIntervalMs: capacityIntervalS * 1000,
    lowSpacePercent,
    sshPort,
    sshBind,
    maxConcurrentBackups,
    restoreIdleMs: restoreIdleS * 1000,
    deleteGraceMs: deleteGraceDays * 86_400_000,
    recyclePurgeIntervalMs: recyclePurgeIntervalS * 1000,
    goneHubCheckMs: goneHubCheckS * 1000,
    goneHubAfterMs: goneHubAfterS * 1000,
  };
  if (problems.length) throw new ConfigError(problems);
  return config;
}

/** 127.0.0.0/8 and ::1 (also as an IPv4-mapped address): only this host can reach a listener there. */
export function isLoopbackAddress(ip: string): boolean {
  const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  if (isIP(v4) === 4) return v4.split('.')[0] === '127';
  return ip === '::1';
}

function apiTlsSetting(str: (name: string) => string | null, apiBind: string, problems: string[]): HubConfig['apiTls'] {
  const raw = str('SENDENSE_API_TLS');
  const certFile = str('SENDENSE_TLS_CERT');
  const keyFile = str('SENDENSE_TLS_KEY');
  if (raw !== null && raw !== 'on' && raw !== 'off') problems.push(`SENDENSE_API_TLS must be on or off, got ${JSON.stringify(raw)}`);
  if ((certFile === null) !== (keyFile === null)) problems.push('SENDENSE_TLS_CERT and SENDENSE_TLS_KEY go together: give both files (certificate and its private key, PEM) or neither');
  const loopback = isIP(apiBind) !== 0 && isLoopbackAddress(apiBind);
  const enabled = raw === 'on' || (raw === null && (!loopback || certFile !== null));
  if (raw === 'off' && !loopback && isIP(apiBind) !== 0) {
    problems.push(
      `SENDENSE_API_TLS=off with SENDENSE_API_BIND=${apiBind}: other hosts could reach the API and its tokens would cross the network in clear; ` +
        'unset SENDENSE_API_TLS (or set it to on) to serve HTTPS, or bind the API to 127.0.0.1',
    );
  }
  if (raw === 'off' && certFile !== null) problems.push('SENDENSE_API_TLS=off but SENDENSE_TLS_CERT is set: unset one of them');
  return { enabled, certFile: certFile === null ? null : resolve(certFile), keyFile: keyFile === null ? null : resolve(keyFile) };
}

function portRange(raw: string, problems: string[]): { first: number; last: number } {
  const match = /^(\d{1,5})-(\d{1,5})$/.exec(raw);
  const first = Number(match?.[1]);
  const last = Number(match?.[2]);
  if (!match || first < 1 || last > 65535 || first > last) {
    problems.push(`SENDENSE_NBD_PORTS must be a range FIRST-LAST of TCP ports with FIRST <= LAST, got ${JSON.stringify(raw)}`);
    return { first: 10100, last: 10200 };
  }
  return { first, last };
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
