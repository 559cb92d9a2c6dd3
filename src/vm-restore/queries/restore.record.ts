import type { DamagedBlock, RestoreTarget } from '../../wire/restore-protocol';
import type { RestoreDiskState } from '../restore.aggregate';
import type { DrillScreenshotRef, KnownDamage, RestorePhase } from '../restore.events';

/** A restore as the API shows it. `status` is what an operator waits on; `phase` where it is. */
export interface RestoreRecord {
  restoreId: string;
  restorePointId: string;
  vmId: string;
  repositoryId: string;
  agentId: string;
  mode: 'full' | 'instant';
  target: RestoreTarget;
  status: 'running' | 'completed' | 'failed' | 'cancelled';
  phase: RestorePhase;
  disks: RestoreDiskState[];
  domain: { name: string; uuid: string; started?: boolean } | null;
  /** Why an instant recovery's background copy waits (its domain kept, still reading from the hub), while it does. */
  stalled: string | null;
  error: string | null;
  damaged: DamagedBlock[];
  knownDamage: KnownDamage[];
  drill: RestoreDrill | null;
  correlationId: string;
  requestedAt: Date;
  finishedAt: Date | null;
  durationMs: number | null;
}

export interface RestoreDrill {
  passed: boolean;
  bootMs: number | null;
  reason: string | null;
  consistency: 'application' | 'crash' | null;
  screenshot: DrillScreenshotRef | null;
}
