import { DomainError } from '../eventing/domain-error';
import { ChainState, integrityOf, pointOf } from '../restore-points/chain.aggregate';
import { RestorePoint } from '../restore-points/chain.events';

/** The point and the points it reads through, oldest first. */
export function lineageOf(state: ChainState, restorePointId: string): RestorePoint[] {
  const lineage: RestorePoint[] = [];
  for (let p = pointOf(state, restorePointId); p; p = p.parentId ? pointOf(state, p.parentId) : undefined) lineage.unshift(p);
  return lineage;
}

/**
 * What reading a disk of a point needs from its chain: the point, the disk, and every file of the
 * lineage (held while reading). 404 for an unknown point or disk; 409 while a delete rewrites the
 * point's file or one it reads through.
 */
export function readTarget(state: ChainState, restorePointId: string, diskId: string) {
  const point = pointOf(state, restorePointId);
  if (!point) throw new DomainError('not_found', `restore point ${restorePointId} does not exist`);
  const disk = point.disks.find((d) => d.diskId === diskId);
  if (!disk) throw new DomainError('not_found', `restore point ${restorePointId} has no disk ${diskId}; its disks are ${point.disks.map((d) => d.diskId).join(', ')}`);
  const lineage = lineageOf(state, restorePointId);
  if (state.pending && lineage.some((p) => p.restorePointId === state.pending!.restorePointId)) {
    throw new DomainError('conflict', `restore point ${state.pending.restorePointId} is being deleted, which rewrites what restore point ${restorePointId} reads; try again once the delete is done`);
  }
  return { point, disk, lineage };
}

/**
 * A corrupt point is not handed out as a disk image by accident: 409 naming the damage, unless
 * the caller says it wants it anyway (it may be all there is).
 */
export function corruptionRefusal(state: ChainState, restorePointId: string, force: boolean): string | null {
  const integrity = integrityOf(state, restorePointId);
  if (integrity.status !== 'corrupt' || force) return null;
  const damage = integrity.damaged.map((d) => `${d.diskId} offset ${d.offset} length ${d.length} (in restore point ${d.inPointId}: expected ${d.expected}, read ${d.actual})`);
  const what = [...damage, ...integrity.problems];
  return `restore point ${restorePointId} is corrupt: ${what.length ? what.join('; ') : 'a verify found it damaged'}. Add force=true to download it anyway`;
}
