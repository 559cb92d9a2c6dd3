import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const HUB_INSTANCE = Symbol('HUB_INSTANCE');

/**
 * A stable id for this hub's data dir. Processes the hub starts are tagged
 * with it, so a second hub on the same host and database never adopts or
 * stops what the first one started.
 */
export function hubInstanceId(dataDir: string): string {
  const file = join(dataDir, 'instance-id');
  if (existsSync(file)) {
    const id = readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f-]{36}$/.test(id)) return id;
  }
  mkdirSync(dataDir, { recursive: true });
  const id = randomUUID();
  writeFileSync(file, id + '\n', { mode: 0o644 });
  return id;
}
