import { join, resolve, sep } from 'node:path';
import { Aggregate } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import {
  Capacity,
  ChunkSpace,
  CollectionFigures,
  REPOSITORY_CAPACITY_SAMPLED,
  REPOSITORY_CHUNKS_MEASURED,
  REPOSITORY_GARBAGE_COLLECTED,
  REPOSITORY_LOW_SPACE,
  REPOSITORY_REGISTERED,
  REPOSITORY_REMOVED,
  REPOSITORY_SETTINGS_CHANGED,
  REPOSITORY_SPACE_RECOVERED,
  MAX_MAX_CHAIN_DEPTH,
  MIN_MAX_CHAIN_DEPTH,
  maxChainDepthOf,
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
  | { kind: 'remove'; restorePoints?: number }
  /** Settings that only steer future backups, so they may change while the repository holds restore points. */
  | { kind: 'changeSettings'; repositoryId: string; maxChainDepth: number }
  /** What a measure of its chunk store found, after a collection that freed what `collected` says, if one ran. */
  | { kind: 'recordChunks'; space: ChunkSpace; collected: CollectionFigures | null };

/** A sample is worth an event when free space moved by at least this share of the total. */
const SIGNIFICANT_CHANGE = 0.01;

export function isInside(path: string, root: string): boolean {
  return path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * Trees the operating system owns: the hub runs as root, so a repository here would let whoever registers it have
 * the hub create, rewrite and serve system files.
 */
const SYSTEM_TREES = ['/etc', '/usr', '/boot', '/efi', '/proc', '/sys', '/dev', '/root', '/bin', '/sbin', '/run', '/snap', '/var/run', '/var/lock', '/var/log', '/var/cache', '/var/spool', '/var/mail'];
/** Directories shared by everything on the host: a repository may sit below them, never be one of them. */
const SHARED_DIRS = ['/var', '/var/lib', '/var/opt', '/var/backups', '/var/tmp', '/tmp', '/srv', '/opt', '/home', '/mnt', '/media'];

/**
 * Why `root` (absolute, normalised, symlinks already resolved by the caller) cannot hold a repository, or null. Package
 * state lives in /var/lib/<package>: only a directory made for Sendense there (/var/lib/sendense…) may hold one. The
 * hub's data directory holds its database, tokens and keys: a repository may neither be nor contain it, and inside it
 * only under `repositories/` (the default export root).
 */
export function rootRefusal(root: string, dataDir: string): string | null {
  const within = (tree: string) => root === tree || isInside(root, tree);
  if (root === '/') return '/ is the whole file system';
  const tree = SYSTEM_TREES.find(within) ?? (/^\/lib(32|64|x32|exec)?(\/|$)/.test(root) ? root.split('/').slice(0, 2).join('/') : undefined);
  if (tree) return `${tree} is a system directory`;
  if (SHARED_DIRS.includes(root)) return `${root} is a system directory shared by the whole host; use a directory made for the repository below it`;
  if (isInside(root, '/var/lib') && !root.split('/')[3].startsWith('sendense')) {
    return `${root.split('/').slice(0, 4).join('/')} is the state directory of another program; use a directory made for Sendense such as /var/lib/sendense/repositories/NAME`;
  }
  const data = resolve(dataDir);
  if (within(resolve(data, 'repositories'))) return null;
  if (within(data) || isInside(data, root)) return `${root} ${within(data) ? 'is or lies in' : 'contains'} the hub's data directory ${data} (only ${join(data, 'repositories')} may hold repositories there)`;
  return null;
}

/** A repository may not be a system directory, nor the hub's data directory, nor hold it. */
export function refuseRoot(root: string, dataDir: string): void {
  const refusal = rootRefusal(root, dataDir);
  if (refusal) throw new DomainError('invalid', `${root} cannot hold a repository: ${refusal}`);
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

/** A chain of one point would make every backup a full; beyond the upper bound qemu's cost per layer makes the limit no limit. */
function refuseChainDepth(depth: number | undefined): void {
  if (depth === undefined) return;
  if (!Number.isInteger(depth) || depth < MIN_MAX_CHAIN_DEPTH || depth > MAX_MAX_CHAIN_DEPTH) {
    throw new DomainError('invalid', `maxChainDepth must be a whole number from ${MIN_MAX_CHAIN_DEPTH} to ${MAX_MAX_CHAIN_DEPTH} (restore points per chain), got ${JSON.stringify(depth)}`);
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
      case REPOSITORY_SETTINGS_CHANGED:
        return { ...state, definition: { ...state.definition!, maxChainDepth: event.data.maxChainDepth } };
      case REPOSITORY_CHUNKS_MEASURED:
      case REPOSITORY_GARBAGE_COLLECTED:
        return state;
    }
  },

  decide(command, state) {
    switch (command.kind) {
      case 'register': {
        if (state.status !== 'none') throw new DomainError('conflict', `repository ${command.definition.repositoryId} already exists`);
        refuseOverlap(command.definition, command.existing ?? []);
        refuseChainDepth(command.definition.maxChainDepth);
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
      case 'changeSettings': {
        // a removed repository is gone as for every other operation on it (404), not a conflict to resolve
        if (state.status !== 'active') throw new DomainError('not_found', `repository ${command.repositoryId} does not exist`);
        refuseChainDepth(command.maxChainDepth);
        if (state.definition!.layout === 'chunks') throw new DomainError('invalid', `maxChainDepth does not apply to repository ${state.definition!.name}: its layout is chunks, each of its points is whole`);
        const previous = maxChainDepthOf(state.definition!);
        // the same value again changes nothing, so a retried request records nothing twice
        if (command.maxChainDepth === previous) return [];
        return [{ type: REPOSITORY_SETTINGS_CHANGED, data: { repositoryId: command.repositoryId, maxChainDepth: command.maxChainDepth, previous } }];
      }
      case 'recordChunks': {
        if (state.status !== 'active') throw new DomainError('not_found', 'repository does not exist');
        if (state.definition!.layout !== 'chunks') throw new DomainError('invalid', `repository ${state.definition!.name} has no chunk store: its layout is qcow2`);
        const repositoryId = state.definition!.repositoryId;
        const measured: RepositoryEvent = { type: REPOSITORY_CHUNKS_MEASURED, data: { repositoryId, ...command.space } };
        return command.collected ? [{ type: REPOSITORY_GARBAGE_COLLECTED, data: { repositoryId, ...command.collected } }, measured] : [measured];
      }
    }
  },
};
