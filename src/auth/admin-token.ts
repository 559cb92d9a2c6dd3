import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newToken } from './token-hash';

export const ADMIN_ACTOR = 'admin';

export interface AdminToken {
  token: string;
  /** Where it was written or read, or null when it came from SENDENSE_ADMIN_TOKEN. */
  file: string | null;
  created: boolean;
}

/** The admin token comes from the environment, or from `admin.token` in the data dir (created 0600 on first start). */
export function ensureAdminToken(dataDir: string, fromEnv: string | null): AdminToken {
  if (fromEnv) return { token: fromEnv, file: null, created: false };
  const file = join(dataDir, 'admin.token');
  if (existsSync(file)) {
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    const token = readFileSync(file, 'utf8').trim();
    if (token.length >= 16) return { token, file, created: false };
  }
  const token = newToken();
  return { token, file: writeAdminTokenFile(dataDir, token), created: true };
}

/** `admin.token` in the data dir, 0600, holding `token`; written whole under another name first, so a reader never sees half a token. */
export function writeAdminTokenFile(dataDir: string, token: string): string {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, 'admin.token');
  const partial = `${file}.partial-${process.pid}`;
  writeFileSync(partial, token + '\n', { mode: 0o600 });
  chmodSync(partial, 0o600);
  renameSync(partial, file);
  return file;
}
