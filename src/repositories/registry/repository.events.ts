import { DomainEvent } from '../../eventing/aggregate';

export const REPOSITORY_REGISTERED = 'RepositoryRegistered';
export const REPOSITORY_CAPACITY_SAMPLED = 'RepositoryCapacitySampled';
export const REPOSITORY_LOW_SPACE = 'RepositoryLowSpace';
export const REPOSITORY_SPACE_RECOVERED = 'RepositorySpaceRecovered';
export const REPOSITORY_REMOVED = 'RepositoryRemoved';

export type RepositoryKind = 'local' | 'nfs' | 'cifs';

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
export type RepositoryEvent = RepositoryRegistered | RepositoryCapacitySampled | RepositoryLowSpace | RepositorySpaceRecovered | RepositoryRemoved;

export const REPOSITORY_STREAM_PREFIX = 'repository-';
export const repositoryStream = (id: string) => `${REPOSITORY_STREAM_PREFIX}${id}`;
