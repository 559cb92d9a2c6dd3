import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DomainError } from '../../eventing/domain-error';
import { ProcessError, runProcess } from '../../process/run-process';

const DAY_MS = 86_400_000;
/** Files per chattr: a point holds a few, a sweep of a repository thousands. */
const FILES_PER_CALL = 200;

/** When a point written at `createdAt` in a repository keeping points `immutableDays` days may be changed again. */
export function lockedUntil(createdAt: string, immutableDays: number): Date {
  return new Date(Date.parse(createdAt) + immutableDays * DAY_MS);
}

/**
 * Sets or clears the immutable attribute (`chattr +i`/`-i`): the kernel then refuses to write, rename or unlink the
 * file, to root as well, until it is cleared. Only a process holding CAP_LINUX_IMMUTABLE can clear it, so an attacker
 * with the hub's API credentials cannot, and one with a shell must first do what leaves a trace. Files already gone
 * (a delete resumed after a crash) are skipped.
 */
export async function setImmutable(files: readonly string[], immutable: boolean): Promise<void> {
  const present = files.filter((f) => existsSync(f));
  for (let i = 0; i < present.length; i += FILES_PER_CALL) {
    await runProcess('chattr', [immutable ? '+i' : '-i', '--', ...present.slice(i, i + FILES_PER_CALL)], { timeoutMs: 60_000 });
  }
}

/** An immutable repository on a filesystem without the attribute (tmpfs, NFS, CIFS) would promise what it cannot keep. */
export async function refuseWithoutImmutableFiles(root: string): Promise<void> {
  const probe = join(root, `.sendense-immutable-probe-${randomUUID()}`);
  await writeFile(probe, '');
  try {
    await setImmutable([probe], true);
    await setImmutable([probe], false);
  } catch (error) {
    const why = error instanceof ProcessError ? error.stderr.trim() || error.message : String(error);
    throw new DomainError('conflict', `the filesystem of ${root} cannot make files immutable (chattr +i: ${why}): an immutable repository needs one that can, such as ext4 or xfs`);
  } finally {
    await rm(probe, { force: true }).catch(() => undefined);
  }
}
