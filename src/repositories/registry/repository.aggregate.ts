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

export type RepositoryCommand =
  | { kind: 'register'; definition: RepositoryDefinition }
  | { kind: 'sample'; capacity: Capacity; thresholdPercent: number }
  | { kind: 'remove' };

/** A sample is worth an event when free space moved by at least this share of the total. */
const SIGNIFICANT_CHANGE = 0.01;

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
      case 'register':
        if (state.status !== 'none') throw new DomainError('conflict', `repository ${command.definition.repositoryId} already exists`);
        return [{ type: REPOSITORY_REGISTERED, data: { ...command.definition } }];
      case 'sample': {
        if (state.status !== 'active') return [];
        const { capacity, thresholdPercent } = command;
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
      case 'remove':
        if (state.status !== 'active') throw new DomainError('not_found', 'repository does not exist');
        return [{ type: REPOSITORY_REMOVED, data: { repositoryId: state.definition!.repositoryId } }];
    }
  },
};
