import { DomainEvent } from '../../eventing/aggregate';

export const REPOSITORY_REGISTERED = 'RepositoryRegistered';
export const REPOSITORY_CAPACITY_SAMPLED = 'RepositoryCapacitySampled';
export const REPOSITORY_LOW_SPACE = 'RepositoryLowSpace';
export const REPOSITORY_SPACE_RECOVERED = 'RepositorySpaceRecovered';
export const REPOSITORY_REMOVED = 'RepositoryRemoved';
export const REPOSITORY_SETTINGS_CHANGED = 'RepositorySettingsChanged';
export const REPOSITORY_CHUNKS_MEASURED = 'RepositoryChunksMeasured';
export const REPOSITORY_GARBAGE_COLLECTED = 'RepositoryGarbageCollected';

export type RepositoryKind = 'local' | 'nfs' | 'cifs';

/**
 * How a repository stores its points: 'qcow2', a chain of qcow2 files per VM and disk; 'chunks', a content-addressed
 * chunk store under `<root>/chunks` shared by every VM of the repository (docs/design/storage.md).
 */
export type RepositoryLayout = 'qcow2' | 'chunks';
export const REPOSITORY_LAYOUTS: readonly RepositoryLayout[] = ['qcow2', 'chunks'];

export interface NfsSource {
  server: string;
  export: string;
  options: string;
}

export interface CifsSource {
  share: string;
  username: string;
  passwordFile: string;
  options: string;
}

export interface RepositoryDefinition {
  repositoryId: string;
  name: string;
  kind: RepositoryKind;
  /** Where restore points live: the local directory, or the mount point the hub mounts NFS/CIFS on. */
  root: string;
  nfs: NfsSource | null;
  cifs: CifsSource | null;
  /** Days a restore point can be neither deleted nor rewritten after it was written; null: no lock. Absent in events before it existed. */
  immutableDays?: number | null;
  /** Its qcow2 files are written encrypted (LUKS) with the key in keyFile, whose SHA-256 is the fingerprint; null or absent: in the clear. */
  encryption?: RepositoryEncryption | null;
  /**
   * The most restore points one chain of a VM may hold (its full and the incrementals reading through it): a backup
   * that would make the chain longer is a synthetic full instead (src/backups/backup-job.aggregate.ts). Absent in
   * events before it existed: DEFAULT_MAX_CHAIN_DEPTH.
   */
  maxChainDepth?: number;
  /** Absent in events before chunk stores existed: 'qcow2'. */
  layout?: RepositoryLayout;
}

export function layoutOf(definition: Pick<RepositoryDefinition, 'layout'>): RepositoryLayout {
  return definition.layout ?? 'qcow2';
}

/**
 * Opening a point costs qemu one file per point of its chain (docs/benchmarks.md, chain): at 32 the newest point of
 * a long-running VM mounts and verifies within twice the time of a chain of 2, and a synthetic full is written once
 * a month for daily backups.
 */
export const DEFAULT_MAX_CHAIN_DEPTH = 32;
export const MIN_MAX_CHAIN_DEPTH = 2;
export const MAX_MAX_CHAIN_DEPTH = 1000;

/** The repository's limit, also for one registered before the setting existed. */
export function maxChainDepthOf(definition: Pick<RepositoryDefinition, 'maxChainDepth' | 'layout'>): number {
  // a chunk point's index is whole: a chain of any length opens as fast as a full, so none is ever synthesized
  if (definition.layout === 'chunks') return Number.MAX_SAFE_INTEGER;
  return definition.maxChainDepth ?? DEFAULT_MAX_CHAIN_DEPTH;
}

export interface RepositoryEncryption {
  /** Where this hub reads the key: a path, never the key. */
  keyFile: string;
  /** sha256:<hex> of the key file's bytes. */
  fingerprint: string;
}

export type Capacity = {
  totalBytes: number;
  freeBytes: number;
  usedBytes: number;
};

export type RepositoryRegistered = DomainEvent<typeof REPOSITORY_REGISTERED, RepositoryDefinition & Record<string, unknown>>;
export type RepositoryCapacitySampled = DomainEvent<typeof REPOSITORY_CAPACITY_SAMPLED, { repositoryId: string } & Capacity>;
export type RepositoryLowSpace = DomainEvent<typeof REPOSITORY_LOW_SPACE, { repositoryId: string; freeBytes: number; totalBytes: number; thresholdPercent: number }>;
export type RepositorySpaceRecovered = DomainEvent<typeof REPOSITORY_SPACE_RECOVERED, { repositoryId: string; freeBytes: number; totalBytes: number; thresholdPercent: number }>;
export type RepositoryRemoved = DomainEvent<typeof REPOSITORY_REMOVED, { repositoryId: string }>;
/**
 * A setting of an active repository changed: from this event on, backups into it decide by the new value. `previous`
 * is the value in force before (DEFAULT_MAX_CHAIN_DEPTH for a repository registered before the setting existed).
 */
export type RepositorySettingsChanged = DomainEvent<typeof REPOSITORY_SETTINGS_CHANGED, { repositoryId: string; maxChainDepth: number; previous: number }>;
/**
 * What a chunks repository holds, read from its store's indexes (src/repositories/chunks/gc.ts): the bytes its
 * points protect (blocks that are not zeros, each point counted whole), the same once per distinct chunk, what its
 * live chunks take stored, every file of the store, and the garbage: packs no point names (`collectableBytes`, freed
 * by the next collection) and chunks no point names inside packs that stay.
 */
export type ChunkSpace = {
  pointDisks: number;
  logicalBytes: number;
  uniqueBytes: number;
  liveBytes: number;
  storedBytes: number;
  collectableBytes: number;
  deadBytesKept: number;
};

export type RepositoryChunksMeasured = DomainEvent<typeof REPOSITORY_CHUNKS_MEASURED, { repositoryId: string } & ChunkSpace>;
/** What a collection did: packs removed whole, packs rewritten with their live chunks alone (absent before repacking was built), bytes freed. */
export type CollectionFigures = { packsRemoved: number; packsRepacked?: number; bytesFreed: number; durationMs: number };
export type RepositoryGarbageCollected = DomainEvent<typeof REPOSITORY_GARBAGE_COLLECTED, { repositoryId: string } & CollectionFigures>;
export type RepositoryEvent =
  | RepositoryRegistered
  | RepositoryCapacitySampled
  | RepositoryLowSpace
  | RepositorySpaceRecovered
  | RepositoryRemoved
  | RepositorySettingsChanged
  | RepositoryChunksMeasured
  | RepositoryGarbageCollected;

export const REPOSITORY_STREAM_PREFIX = 'repository-';
export const repositoryStream = (id: string) => `${REPOSITORY_STREAM_PREFIX}${id}`;
