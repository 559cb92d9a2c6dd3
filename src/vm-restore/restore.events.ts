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
export const RECOVERY_DRILL_PASSED = 'RecoveryDrillPassed';
export const INSTANT_RECOVERY_RUNNING = 'InstantRecoveryRunning';
export const INSTANT_RECOVERY_LOCAL = 'InstantRecoveryLocal';
export const INSTANT_RECOVERY_STALLED = 'InstantRecoveryStalled';
export const INSTANT_RECOVERY_RESUMED = 'InstantRecoveryResumed';
export const RECOVERY_DRILL_FAILED = 'RecoveryDrillFailed';

export type RestorePhase = 'requested' | 'writing' | 'defining' | 'pulling' | 'completed' | 'failed' | 'cancelled';

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
  { restoreId: string; restorePointId: string; vmId: string; repositoryId: string; agentId: string; mode: 'full' | 'instant'; target: RestoreTarget; definition: MinimalDefinition | null; force: boolean; knownDamage: KnownDamage[]; requestedAt?: string }
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
/** Instant recovery: the new domain runs on overlays backed by the hub's export; the background copy has begun. `runningMs`: from the request. */
export type InstantRecoveryRunning = DomainEvent<typeof INSTANT_RECOVERY_RUNNING, { restoreId: string; name: string; uuid: string; runningMs: number }>;
/** Every disk of the instant recovery is local: the domain no longer reads from the hub, whose exports stop next. */
export type InstantRecoveryLocal = DomainEvent<typeof INSTANT_RECOVERY_LOCAL, { restoreId: string; durationMs: number }>;
/** The background copy cannot go on (`reason`, the agent's words); the domain is kept and the copy waits for the reason to clear. */
export type InstantRecoveryStalled = DomainEvent<typeof INSTANT_RECOVERY_STALLED, { restoreId: string; reason: string }>;
/** The reason of the last InstantRecoveryStalled cleared: the background copy goes on. */
export type InstantRecoveryResumed = DomainEvent<typeof INSTANT_RECOVERY_RESUMED, { restoreId: string }>;
/** The console at a drill's verdict, kept by the hub (`$SENDENSE_DATA_DIR/drills/<restoreId>.<ext>`). */
export interface DrillScreenshotRef {
  file: string;
  contentType: string;
  bytes: number;
  sha256: string;
}
/** The point booted: its guest agent answered (or, without one, it kept running with its disks readable) `bootMs` after the domain was created. */
export type RecoveryDrillPassed = DomainEvent<
  typeof RECOVERY_DRILL_PASSED,
  { restoreId: string; restorePointId: string; vmId: string; bootMs: number; consistency: 'application' | 'crash' | null; screenshot: DrillScreenshotRef | null }
>;
export type RecoveryDrillFailed = DomainEvent<typeof RECOVERY_DRILL_FAILED, { restoreId: string; restorePointId: string; vmId: string; reason: string; screenshot: DrillScreenshotRef | null }>;
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
  | RestoreCancelled
  | RecoveryDrillPassed
  | RecoveryDrillFailed
  | InstantRecoveryRunning
  | InstantRecoveryLocal
  | InstantRecoveryStalled
  | InstantRecoveryResumed;

export const RESTORE_STREAM_PREFIX = 'vm-restore-';
export const restoreStream = (restoreId: string) => `${RESTORE_STREAM_PREFIX}${restoreId}`;
export const RESTORE_TERMINAL_EVENTS = [RESTORE_COMPLETED, RESTORE_FAILED, RESTORE_CANCELLED, RECOVERY_DRILL_PASSED, RECOVERY_DRILL_FAILED];
