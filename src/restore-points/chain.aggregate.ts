import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import {
  CHAIN_BROKEN,
  ChainEvent,
  DeleteStrategy,
  DigestCoverage,
  PointDisk,
  DamagedRange,
  RESTORE_POINT_ADDED,
  RESTORE_POINT_SYNCED,
  RESTORE_POINT_CORRUPTED,
  RESTORE_POINT_DELETE_FAILED,
  RESTORE_POINT_DELETE_ADOPTED,
  RESTORE_POINT_DELETE_STARTED,
  RESTORE_POINT_DELETED,
  RESTORE_POINT_MERGED,
  RESTORE_POINT_VERIFIED,
  RESTORE_POINT_RECYCLED,
  RESTORE_POINT_UNDELETED,
  PointSource,
  RestorePoint,
} from './chain.events';

export interface PendingDelete {
  restorePointId: string;
  strategy: DeleteStrategy;
  childId: string | null;
  parentId: string | null;
  /** The hub process that runs it; absent for a delete started before processes were named. */
  hubInstance?: string;
}

export type Integrity = 'unverified' | 'verified' | 'corrupt';

export interface PointIntegrity {
  status: Integrity;
  /** When a verify last read the point back; null when none did. */
  verifiedAt: string | null;
  /** What makes it corrupt: its own damaged blocks and those it reads through. */
  damaged: DamagedRange[];
  /** Structural problems a verify found (a file's qcow2 check, the backing chain). */
  problems: string[];
}

export interface ChainState {
  /** Oldest first. A later full point starts a new segment: its parentId is null. */
  points: RestorePoint[];
  pending: PendingDelete | null;
  /** By restore point id; a point without an entry was never verified. Corrupt is final. */
  integrity: Record<string, PointIntegrity>;
  /** The last break recorded: the same break (point and reason) is recorded once. */
  lastBreak: { restorePointId: string | null; reason: string } | null;
  /** Points in the recycle bin, by id: still in `points` (their files back their children) until purged. */
  recycled: Record<string, { recycledAt: string; purgeAfter: string }>;
}

const UNVERIFIED: PointIntegrity = { status: 'unverified', verifiedAt: null, damaged: [], problems: [] };

export function integrityOf(state: ChainState, restorePointId: string): PointIntegrity {
  return state.integrity[restorePointId] ?? UNVERIFIED;
}

function withoutPoint<T>(byPoint: Record<string, T>, restorePointId: string): Record<string, T> {
  const { [restorePointId]: _gone, ...rest } = byPoint;
  return rest;
}

export type ChainCommand =
  | { kind: 'add'; point: RestorePoint }
  /** A point copied from another hub and checked against its digests. */
  | { kind: 'sync'; point: RestorePoint; synced: PointSource }
  /** `dueBy`: a purge of the recycle bin, which takes the point only while it is still there with its grace ended by then. */
  | { kind: 'startDelete'; restorePointId: string; dueBy?: string; hubInstance?: string }
  /** Another hub process takes over the delete `from` left (null: a delete whose process was never named). */
  | { kind: 'adoptDelete'; restorePointId: string; hubInstance: string; from: string | null }
  | { kind: 'completeDelete'; restorePointId: string; childDisks: PointDisk[] | null }
  /** The delete cannot go on (its file surgery failed, or a backup was found holding the chain): `undone` when the files are as before. */
  | { kind: 'failDelete'; restorePointId: string; reason: string; undone: boolean }
  | { kind: 'recordVerification'; restorePointId: string; ok: boolean; problems: string[]; warnings: string[]; verifiedAt: string; digests: DigestCoverage }
  /** A block of `restorePointId` read back did not match its digest; `readsThrough` are the later points that read that block from it. */
  | { kind: 'recordCorruption'; restorePointId: string; diskId: string; offset: number; length: number; expected: string; actual: string; readsThrough: string[] }
  /** A point a rescan found in the repository's manifests, with the files of it that are not there. */
  | { kind: 'recordRescanFinding'; point: RestorePoint; missingFiles: string[] }
  /** A backup will not build on this point (it is corrupt): the chain ends there and the next point starts a new one. */
  | { kind: 'breakAt'; restorePointId: string; reason: string }
  /** A delete with a grace period: the point goes to the recycle bin, its files untouched. */
  | { kind: 'recycle'; restorePointId: string; recycledAt: string; purgeAfter: string; by: string; reason: string }
  | { kind: 'undelete'; restorePointId: string; by: string };

export function childOf(state: ChainState, restorePointId: string): RestorePoint | undefined {
  return state.points.find((p) => p.parentId === restorePointId);
}

export function pointOf(state: ChainState, restorePointId: string): RestorePoint | undefined {
  return state.points.find((p) => p.restorePointId === restorePointId);
}

/** The point and every point reading through it: what a delete rewrites or depends on. */
export function pointAndDescendants(state: ChainState, restorePointId: string): RestorePoint[] {
  const out: RestorePoint[] = [];
  for (let p = pointOf(state, restorePointId); p; p = childOf(state, p.restorePointId)) out.push(p);
  return out;
}

/** How many points the view of `restorePointId` opens: itself and every point it reads through, down to its full. */
export function depthOf(state: ChainState, restorePointId: string): number {
  let depth = 0;
  for (let p = pointOf(state, restorePointId); p; p = p.parentId ? pointOf(state, p.parentId) : undefined) depth++;
  return depth;
}

/** The point and the points it reads through, oldest (its full) first. */
export function lineageOf(state: ChainState, restorePointId: string): RestorePoint[] {
  const lineage: RestorePoint[] = [];
  for (let p = pointOf(state, restorePointId); p; p = p.parentId ? pointOf(state, p.parentId) : undefined) lineage.unshift(p);
  return lineage;
}

export function deleteStrategy(state: ChainState, restorePointId: string): DeleteStrategy {
  const point = pointOf(state, restorePointId)!;
  if (!childOf(state, restorePointId)) return 'remove-newest';
  return point.parentId === null ? 'merge-into-child' : 'remove-middle';
}

export const chainAggregate: Aggregate<ChainState, ChainCommand, ChainEvent> = {
  initialState: () => ({ points: [], pending: null, integrity: {}, lastBreak: null, recycled: {} }),

  evolve(state, event) {
    switch (event.type) {
      case RESTORE_POINT_ADDED:
        return { ...state, points: [...state.points, event.data as RestorePoint] };
      case RESTORE_POINT_SYNCED: {
        const { synced: _source, ...point } = event.data;
        return { ...state, points: [...state.points, point as RestorePoint] };
      }
      case RESTORE_POINT_DELETE_STARTED:
        return { ...state, pending: { ...event.data } };
      case RESTORE_POINT_DELETE_ADOPTED:
        return state.pending ? { ...state, pending: { ...state.pending, hubInstance: event.data.hubInstance } } : state;
      case RESTORE_POINT_MERGED: {
        const { restorePointId, intoId, disks } = event.data;
        const points = state.points
          .filter((p) => p.restorePointId !== restorePointId)
          .map((p) => (p.restorePointId === intoId ? { ...p, type: 'full' as const, parentId: null, disks } : p));
        return { ...state, points, pending: null, integrity: withoutPoint(state.integrity, restorePointId), recycled: withoutPoint(state.recycled, restorePointId) };
      }
      case RESTORE_POINT_DELETED: {
        const removed = pointOf(state, event.data.restorePointId);
        const childDisks = event.data.childDisks;
        const points = state.points
          .filter((p) => p.restorePointId !== event.data.restorePointId)
          .map((p) => (removed && p.parentId === removed.restorePointId ? { ...p, parentId: removed.parentId, disks: childDisks ?? p.disks } : p));
        return { ...state, points, pending: null, integrity: withoutPoint(state.integrity, event.data.restorePointId), recycled: withoutPoint(state.recycled, event.data.restorePointId) };
      }
      case RESTORE_POINT_VERIFIED: {
        const { restorePointId, ok, problems, verifiedAt, digests } = event.data;
        const before = integrityOf(state, restorePointId);
        // verified means its content was read back against digests; a structural check alone proves less
        const byContent = verifiedAt !== undefined && (digests ?? 'all') === 'all';
        const status: Integrity = before.status === 'corrupt' || !ok ? 'corrupt' : byContent ? 'verified' : before.status;
        return { ...state, integrity: { ...state.integrity, [restorePointId]: { ...before, status, verifiedAt: verifiedAt ?? before.verifiedAt, problems: ok ? before.problems : problems } } };
      }
      case RESTORE_POINT_CORRUPTED: {
        const { restorePointId, diskId, offset, length, expected, actual, readsThrough } = event.data;
        const range: DamagedRange = { diskId, offset, length, expected, actual, inPointId: restorePointId };
        const integrity = { ...state.integrity };
        for (const id of [restorePointId, ...readsThrough]) {
          const before = integrityOf(state, id);
          integrity[id] = { ...before, status: 'corrupt', damaged: [...before.damaged, range] };
        }
        return { ...state, integrity };
      }
      case RESTORE_POINT_DELETE_FAILED: {
        const { restorePointId, reason, undone } = event.data;
        if (undone) return { ...state, pending: null };
        const before = integrityOf(state, restorePointId);
        return { ...state, pending: null, integrity: { ...state.integrity, [restorePointId]: { ...before, status: 'corrupt', problems: [...before.problems, `a delete stopped midway: ${reason}`] } } };
      }
      case CHAIN_BROKEN:
        return { ...state, lastBreak: { restorePointId: event.data.restorePointId, reason: event.data.reason } };
      case RESTORE_POINT_RECYCLED:
        return { ...state, recycled: { ...state.recycled, [event.data.restorePointId]: { recycledAt: event.data.recycledAt, purgeAfter: event.data.purgeAfter } } };
      case RESTORE_POINT_UNDELETED:
        return { ...state, recycled: withoutPoint(state.recycled, event.data.restorePointId) };
    }
  },

  decide(command, state) {
    switch (command.kind) {
      case 'add':
      case 'sync': {
        const p = command.point;
        if (pointOf(state, p.restorePointId)) throw new DomainError('conflict', `restore point ${p.restorePointId} is already in the chain`);
        if (state.pending) throw new DomainError('conflict', `the chain is busy deleting restore point ${state.pending.restorePointId}`);
        if (p.type === 'full' && p.parentId !== null) throw new DomainError('invalid', 'a full restore point has no parent');
        if (p.type === 'incremental') {
          const last = state.points.at(-1);
          if (!last || p.parentId !== last.restorePointId) {
            throw new DomainError('conflict', `an incremental must build on the newest point ${last?.restorePointId ?? '(none)'}, not ${p.parentId}`);
          }
        }
        return command.kind === 'add' ? [{ type: RESTORE_POINT_ADDED, data: { ...p } }] : [{ type: RESTORE_POINT_SYNCED, data: { ...p, synced: { ...command.synced } } }];
      }
      case 'startDelete': {
        const point = pointOf(state, command.restorePointId);
        if (!point) throw new DomainError('not_found', `restore point ${command.restorePointId} does not exist`);
        if (state.pending) throw new DomainError('conflict', `the chain is busy deleting restore point ${state.pending.restorePointId}`);
        // decided on the stream an undelete appends to: a purge round that listed the point before it was undeleted stops here
        const binned = state.recycled[command.restorePointId];
        if (command.dueBy !== undefined && !binned) throw new DomainError('conflict', `restore point ${command.restorePointId} is no longer in the recycle bin: it was undeleted`);
        if (command.dueBy !== undefined && Date.parse(binned.purgeAfter) > Date.parse(command.dueBy)) throw new DomainError('conflict', `restore point ${command.restorePointId} stays in the recycle bin until ${binned.purgeAfter}`);
        const strategy = deleteStrategy(state, command.restorePointId);
        return [
          {
            type: RESTORE_POINT_DELETE_STARTED,
            data: { restorePointId: point.restorePointId, strategy, childId: childOf(state, point.restorePointId)?.restorePointId ?? null, parentId: point.parentId, ...(command.hubInstance ? { hubInstance: command.hubInstance } : {}) },
          },
        ];
      }
      case 'adoptDelete': {
        const pending = state.pending;
        if (pending?.restorePointId !== command.restorePointId) throw new DomainError('conflict', `restore point ${command.restorePointId} is not being deleted`);
        // decided on the stream: of two processes taking over one delete, the second finds it taken
        if ((pending.hubInstance ?? null) !== command.from) throw new DomainError('conflict', `the delete of restore point ${command.restorePointId} is run by hub process ${pending.hubInstance ?? '(unnamed)'}, not ${command.from ?? '(unnamed)'}`);
        return [{ type: RESTORE_POINT_DELETE_ADOPTED, data: { restorePointId: command.restorePointId, hubInstance: command.hubInstance, from: command.from } }];
      }
      case 'completeDelete': {
        const pending = state.pending;
        if (!pending || pending.restorePointId !== command.restorePointId) return [];
        if (pending.strategy === 'merge-into-child') {
          return [{ type: RESTORE_POINT_MERGED, data: { restorePointId: pending.restorePointId, intoId: pending.childId!, disks: command.childDisks ?? [] } }];
        }
        return [{ type: RESTORE_POINT_DELETED, data: { restorePointId: pending.restorePointId, strategy: pending.strategy, childDisks: command.childDisks } }];
      }
      case 'failDelete': {
        const pending = state.pending;
        if (!pending || pending.restorePointId !== command.restorePointId) return [];
        return [{ type: RESTORE_POINT_DELETE_FAILED, data: { restorePointId: command.restorePointId, reason: command.reason, undone: command.undone } }];
      }
      case 'recordVerification': {
        if (!pointOf(state, command.restorePointId)) throw new DomainError('not_found', `restore point ${command.restorePointId} does not exist`);
        const { restorePointId, ok, problems, warnings, verifiedAt, digests } = command;
        const events: ChainEvent[] = [{ type: RESTORE_POINT_VERIFIED, data: { restorePointId, ok, problems, warnings, verifiedAt, digests } }];
        if (!ok) events.push({ type: CHAIN_BROKEN, data: { restorePointId, reason: problems.join('; ') } });
        return events;
      }
      case 'recordCorruption': {
        const { restorePointId, diskId, offset, length, expected, actual } = command;
        if (!pointOf(state, restorePointId)) throw new DomainError('not_found', `restore point ${restorePointId} does not exist`);
        // the same damaged block found again (a second verify) is already on record
        const known = integrityOf(state, restorePointId).damaged.some((d) => d.inPointId === restorePointId && d.diskId === diskId && d.offset === offset && d.actual === actual);
        if (known) return [];
        const readsThrough = command.readsThrough.filter((id) => id !== restorePointId && pointOf(state, id));
        return [{ type: RESTORE_POINT_CORRUPTED, data: { restorePointId, diskId, offset, length, expected, actual, readsThrough } }];
      }
      case 'breakAt': {
        if (!pointOf(state, command.restorePointId)) throw new DomainError('not_found', `restore point ${command.restorePointId} does not exist`);
        if (state.lastBreak?.restorePointId === command.restorePointId && state.lastBreak.reason === command.reason) return [];
        return [{ type: CHAIN_BROKEN, data: { reason: command.reason, restorePointId: command.restorePointId } }];
      }
      case 'recycle': {
        const { restorePointId, recycledAt, purgeAfter, by, reason } = command;
        if (!pointOf(state, restorePointId)) throw new DomainError('not_found', `restore point ${restorePointId} does not exist`);
        if (state.recycled[restorePointId]) return [];
        if (state.pending?.restorePointId === restorePointId) throw new DomainError('conflict', `restore point ${restorePointId} is being deleted`);
        return [{ type: RESTORE_POINT_RECYCLED, data: { restorePointId, recycledAt, purgeAfter, by, reason } }];
      }
      case 'undelete': {
        const { restorePointId, by } = command;
        if (!pointOf(state, restorePointId)) throw new DomainError('not_found', `restore point ${restorePointId} does not exist`);
        if (!state.recycled[restorePointId]) throw new DomainError('conflict', `restore point ${restorePointId} is not in the recycle bin`);
        if (state.pending?.restorePointId === restorePointId) throw new DomainError('conflict', `restore point ${restorePointId} is being purged`);
        return [{ type: RESTORE_POINT_UNDELETED, data: { restorePointId, by } }];
      }
      case 'recordRescanFinding': {
        const p = command.point;
        if (pointOf(state, p.restorePointId)) return [];
        const reason = command.missingFiles.length
          ? `files missing: ${command.missingFiles.join(', ')}`
          : p.parentId && !pointOf(state, p.parentId)
            ? `parent ${p.parentId} is not in the chain`
            : null;
        if (reason) return [{ type: CHAIN_BROKEN, data: { reason, restorePointId: p.restorePointId } }];
        return chainAggregate.decide({ kind: 'add', point: p }, state);
      }
    }
  },
};
