import { statfs } from 'node:fs/promises';
import { Capacity } from '../registry/repository.events';

/** Free space as an unprivileged writer sees it (bavail), which is what a backup can actually use. */
export async function measureCapacity(root: string): Promise<Capacity> {
  const s = await statfs(root);
  const totalBytes = s.blocks * s.bsize;
  const freeBytes = s.bavail * s.bsize;
  return { totalBytes, freeBytes, usedBytes: totalBytes - s.bfree * s.bsize };
}
