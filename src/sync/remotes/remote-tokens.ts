import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDirectory, fsyncFile } from '../../repositories/qcow2/durable-fs';

/**
 * The token a remote issued this hub, kept in the data directory (mode 0600) and never in an event: the event log
 * is read by audits and replays, and a sync token reads every restore point of the remote.
 */
export function remoteTokenFile(dataDir: string, remoteId: string): string {
  return join(dataDir, 'remotes', `${remoteId}.token`);
}

export async function storeRemoteToken(dataDir: string, remoteId: string, token: string): Promise<void> {
  const dir = join(dataDir, 'remotes');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = remoteTokenFile(dataDir, remoteId);
  await writeFile(`${file}.tmp`, `${token}\n`, { mode: 0o600 });
  await fsyncFile(`${file}.tmp`);
  await rename(`${file}.tmp`, file);
  await fsyncDirectory(dir);
}

export async function remoteToken(dataDir: string, remoteId: string): Promise<string> {
  return (await readFile(remoteTokenFile(dataDir, remoteId), 'utf8')).trim();
}
