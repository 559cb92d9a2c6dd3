import { DomainError } from '../eventing/domain-error';
import { lockedUntil } from '../repositories/adapters/immutable-files';
import type { RepositoryDefinition } from '../repositories/registry/repository.events';
import { ChainState, childOf, pointOf } from './chain.aggregate';
import type { RestorePoint } from './chain.events';

/** Where a point's lock is measured from: when this hub wrote it (a backup's createdAt, a synced point's lockedFrom). */
export function lockedFromOf(point: Pick<RestorePoint, 'createdAt' | 'lockedFrom'>): string {
  return point.lockedFrom ?? point.createdAt;
}

/**
 * A delete (asked for, or retention's prune, merge or rebase) of a point of an immutable repository is refused
 * until the point's lock has expired, and until the lock of the child whose files it rewrites has too.
 */
export function refuseWhileImmutable(repository: RepositoryDefinition, state: ChainState, restorePointId: string, now: Date): void {
  const days = repository.immutableDays;
  if (!days) return;
  const point = pointOf(state, restorePointId);
  if (!point) return;
  const until = lockedUntil(lockedFromOf(point), days);
  const rule = `repository ${repository.name} keeps its restore points immutable for ${days} day(s) after they were written`;
  if (until > now) throw new DomainError('conflict', `restore point ${restorePointId} is immutable until ${until.toISOString()}: ${rule}`);
  const child = childOf(state, restorePointId);
  if (!child) return;
  const childUntil = lockedUntil(lockedFromOf(child), days);
  if (childUntil > now) throw new DomainError('conflict', `restore point ${restorePointId} is immutable until ${childUntil.toISOString()}: deleting it rewrites restore point ${child.restorePointId}, and ${rule}`);
}

/** The reason retention records for a point it may not prune yet: tried again at its next decision, not every minute. */
export function isImmutabilityRefusal(reason: string): boolean {
  return / is immutable until \S+: /.test(reason);
}
