import { dirname, join, resolve } from 'node:path';
import { findMergeJournals } from '../repositories/qcow2/chain-surgery';
import { backingPathOf } from '../repositories/qcow2/dependents';
import { exists } from '../repositories/qcow2/durable-fs';
import { PendingDelete } from './chain.aggregate';
import { RestorePoint } from './chain.events';

/**
 * Whether a delete that stopped left the point's files exactly as they were, so that recording it as undone
 * is true: every file of the point is there and, where it has a child, the child still reads through it
 * (a safe rebase rewrites the child's header last), and no merge began (a merge's commit writes into the
 * oldest file in place, so once its journal exists the old content may be gone).
 */
export async function filesAsBefore(root: string, pending: PendingDelete, point: RestorePoint, child: RestorePoint | undefined): Promise<boolean> {
  for (const disk of point.disks) {
    const file = resolve(join(root, disk.file));
    if (!(await exists(file))) return false;
    if (pending.strategy === 'remove-newest') continue;
    const childDisk = child?.disks.find((d) => d.diskId === disk.diskId);
    if (!childDisk || (await backingPathOf(join(root, childDisk.file)).catch(() => null)) !== file) return false;
    const journals = pending.strategy === 'merge-into-child' ? await findMergeJournals(dirname(file)) : [];
    if (journals.some((j) => j.endsWith(`.merge-${point.restorePointId}-${disk.diskId}.json`))) return false;
  }
  return true;
}
