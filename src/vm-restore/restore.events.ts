import { DomainEvent } from '../eventing/aggregate';
import type { DamagedBlock, MinimalDefinition, RestoreTarget } from '../wire/restore-protocol';

export const RESTORE_REQUESTED = 'RestoreRequested';
export const RESTORE_STARTED = 'RestoreStarted';
export const RESTORE_DISKS_PLANNED = 'RestoreDisksPlanned';
export const RESTORE_DISK_PROGRESSED = 'RestoreDiskProgressed';
export const RESTORE_DISK_COMPLETED = 'RestoreDiskCompleted';
export const RESTORE_DOMAIN_DEFINED = 'RestoreDomainDefined';
export const RESTORE_COMPLETED = 'RestoreCompleted';
export const RESTORE_FAILED = 'RestoreFailed';
export const RESTORE_CANCEL_REQUESTED = 'RestoreCancelRequested';
export const RESTORE_CANCELLED = 'RestoreCancelled';

export type RestorePhase = 'requested' | 'writing' | 'defining' | 'completed' | 'failed' | 'cancelled';

/** A damaged block a verify found in the point before the restore was asked for (a forced restore of a corrupt point). */
export interface KnownDamage {
  diskId: string;
  offset: number;
  length: number;
  inPointId: string;
}

export interface RestoreExport {
  diskId: string;
  virtualSize: number;
  /** The point's file for the disk, relative to the repository root: its export reads the chain below it. */
  file: string;
  leaseId: string;
  port: number;
  exportName: string;
}

export type RestoreRequested = DomainEvent<
  typeof RESTORE_REQUESTED,
  { restoreId: string; restorePointId: string; vmId: string; repositoryId: string; agentId: string; mode: 'full'; target: RestoreTarget; definition: MinimalDefinition | null; force: boolean; knownDamage: KnownDamage[] }
>;
/** `hubInstance`: the hub process that runs the restore (holds the agent's session); `disks`: the point's disks as exported for the agent. */
export type RestoreStarted = DomainEvent<typeof RESTORE_STARTED, { restoreId: string; hubInstance: string; disks: RestoreExport[] }>;
export type RestoreDisksPlanned = DomainEvent<typeof RESTORE_DISKS_PLANNED, { restoreId: string; disks: { diskId: string; path: string }[] }>;
export type RestoreDiskProgressed = DomainEvent<typeof RESTORE_DISK_PROGRESSED, { restoreId: string; diskId: string; bytesDone: number; bytesPlanned: number; rate: number }>;
export type RestoreDiskCompleted = DomainEvent<
  typeof RESTORE_DISK_COMPLETED,
  { restoreId: string; diskId: string; bytesWritten: number; bytesZeroed: number; bytesPlanned: number; durationMs: number; verifiedBlocks: number }
>;
export type RestoreDomainDefined = DomainEvent<typeof RESTORE_DOMAIN_DEFINED, { restoreId: string; name: string; uuid: string }>;
export type RestoreCompleted = DomainEvent<typeof RESTORE_COMPLETED, { restoreId: string; domain: { name: string; uuid: string; started: boolean }; durationMs: number }>;
export type RestoreFailed = DomainEvent<typeof RESTORE_FAILED, { restoreId: string; reason: string; phase: RestorePhase; damaged: DamagedBlock[] }>;
export type RestoreCancelRequested = DomainEvent<typeof RESTORE_CANCEL_REQUESTED, { restoreId: string }>;
export type RestoreCancelled = DomainEvent<typeof RESTORE_CANCELLED, { restoreId: string; phase: RestorePhase }>;

export type RestoreEvent =
  | RestoreRequested
  | RestoreStarted
  | RestoreDisksPlanned
  | RestoreDiskProgressed
  | RestoreDiskCompleted
  | RestoreDomainDefined
  | RestoreCompleted
  | RestoreFailed
  | RestoreCancelRequested
  | RestoreCancelled;

export const RESTORE_STREAM_PREFIX = 'vm-restore-';
export const restoreStream = (restoreId: string) => `${RESTORE_STREAM_PREFIX}${restoreId}`;
export const RESTORE_TERMINAL_EVENTS = [RESTORE_COMPLETED, RESTORE_FAILED, RESTORE_CANCELLED];
