import { resolve, sep } from 'node:path';
import { Aggregate } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import {
  Capacity,
  REPOSITORY_CAPACITY_SAMPLED,
  REPOSITORY_LOW_SPACE,
  REPOSITORY_REGISTERED,
  REPOSITORY_REMOVED,
  REPOSITORY_SPACE_RECOVERED,
  RepositoryDefinition,
  RepositoryEvent,
} from './repository.events';

export interface RepositoryState {
  status: 'none' | 'active' | 'removed';
  definition: RepositoryDefinition | null;
  lastSample: Capacity | null;
  lowSpace: boolean;
}

/** What registering needs to know about the repositories that already exist. */
export interface ExistingRepository {
  repositoryId: string;
  name: string;
  root: string;
}

export type RepositoryCommand =
  /** With a first capacity sample, the repository arrives together with its size. */
  | { kind: 'register'; definition: RepositoryDefinition; existing?: ExistingRepository[]; capacity?: Capacity; thresholdPercent?: number }
  | { kind: 'sample'; capacity: Capacity; thresholdPercent: number }
  /** `restorePoints`: how many restore points the repository still holds. */
  | { kind: 'remove'; restorePoints?: number };

/** A sample is worth an event when free space moved by at least this share of the total. */
const SIGNIFICANT_CHANGE = 0.01;

export function isInside(path: string, root: string): boolean {
  return path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** A repository may not live in the hub's own database directory nor be the whole file system. */
export function refuseRoot(root: string, dataDir: string): void {
  if (isInside(root, resolve(dataDir, 'postgres')) || root === resolve('/')) throw new DomainError('invalid', `${root} cannot hold a repository`);
}

/** Names are unique and no repository may sit inside another: a restore point belongs to exactly one. */
export function refuseOverlap(definition: RepositoryDefinition, existing: ExistingRepository[]): void {
  for (const other of existing) {
    if (other.repositoryId === definition.repositoryId) continue;
    if (other.name === definition.name) throw new DomainError('conflict', `a repository named ${definition.name} already exists (${other.repositoryId})`);
    if (isInside(definition.root, other.root) || isInside(other.root, definition.root) || other.root === definition.root) {
      throw new DomainError('conflict', `${definition.root} overlaps repository ${other.name} at ${other.root}`);
    }
  }
}

function sampled(state: RepositoryState, capacity: Capacity, thresholdPercent: number): RepositoryEvent[] {
  if (state.status !== 'active') return [];
  const repositoryId = state.definition!.repositoryId;
  const events: RepositoryEvent[] = [];
  const last = state.lastSample;
  if (!last || last.totalBytes !== capacity.totalBytes || Math.abs(last.freeBytes - capacity.freeBytes) >= capacity.totalBytes * SIGNIFICANT_CHANGE) {
    events.push({ type: REPOSITORY_CAPACITY_SAMPLED, data: { repositoryId, ...capacity } });
  }
  const low = capacity.totalBytes > 0 && (capacity.freeBytes / capacity.totalBytes) * 100 < thresholdPercent;
  const crossing = { repositoryId, freeBytes: capacity.freeBytes, totalBytes: capacity.totalBytes, thresholdPercent };
  if (low && !state.lowSpace) events.push({ type: REPOSITORY_LOW_SPACE, data: crossing });
  if (!low && state.lowSpace) events.push({ type: REPOSITORY_SPACE_RECOVERED, data: crossing });
  return events;
}

export const repositoryAggregate: Aggregate<RepositoryState, RepositoryCommand, RepositoryEvent> = {
  initialState: () => ({ status: 'none', definition: null, lastSample: null, lowSpace: false }),

  evolve(state, event) {
    switch (event.type) {
      case REPOSITORY_REGISTERED:
        return { ...state, status: 'active', definition: event.data as RepositoryDefinition };
      case REPOSITORY_CAPACITY_SAMPLED:
        return { ...state, lastSample: { totalBytes: event.data.totalBytes, freeBytes: event.data.freeBytes, usedBytes: event.data.usedBytes } };
      case REPOSITORY_LOW_SPACE:
        return { ...state, lowSpace: true };
      case REPOSITORY_SPACE_RECOVERED:
        return { ...state, lowSpace: false };
      case REPOSITORY_REMOVED:
        return { ...state, status: 'removed' };
    }
  },

  decide(command, state) {
    switch (command.kind) {
      case 'register': {
        if (state.status !== 'none') throw new DomainError('conflict', `repository ${command.definition.repositoryId} already exists`);
        refuseOverlap(command.definition, command.existing ?? []);
        const registered: RepositoryEvent = { type: REPOSITORY_REGISTERED, data: { ...command.definition } };
        if (!command.capacity) return [registered];
        return [registered, ...sampled(repositoryAggregate.evolve(state, registered), command.capacity, command.thresholdPercent ?? 0)];
      }
      case 'sample':
        return sampled(state, command.capacity, command.thresholdPercent);
      case 'remove':
        if (state.status !== 'active') throw new DomainError('not_found', 'repository does not exist');
        if (command.restorePoints) throw new DomainError('conflict', `repository ${state.definition!.name} holds ${command.restorePoints} restore point(s); delete them first`);
        return [{ type: REPOSITORY_REMOVED, data: { repositoryId: state.definition!.repositoryId } }];
    }
  },
};
