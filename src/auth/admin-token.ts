import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
  mkdirSync(dataDir, { recursive: true });
  const token = newToken();
  writeFileSync(file, token + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, file, created: true };
}
