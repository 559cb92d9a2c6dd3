import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { AgentReport, Consistency, DiskLeftOut } from '../wire/backup-protocol';
import {
  BACKUP_CANCEL_REQUESTED,
  BACKUP_COMPLETED,
  BACKUP_FAILED,
  BACKUP_REQUEST_VOIDED,
  BACKUP_REQUESTED,
  BACKUP_STARTED,
  BACKUP_TARGETS_PREPARED,
  BACKUP_TARGETS_RELEASED,
  BACKUP_TYPE_DECIDED,
  BackupEvent,
  BackupPhase,
  BackupType,
  DISK_TRANSFER_COMPLETED,
  DISK_TRANSFER_PROGRESSED,
  DISK_TRANSFER_STARTED,
  RequestedType,
  SNAPSHOT_CREATED,
  SNAPSHOT_REMOVED,
  SNAPSHOT_REQUESTED,
  Target,
} from './backup.events';

export interface DiskProgress {
  bytesDone: number;
  bytesPlanned: number;
  rate: number;
  done: boolean;
  bytesWritten: number;
  changeRef: string | null;
}

export interface BackupJobState {
  jobId: string | null;
  vmId: string | null;
  agentId: string | null;
  repositoryId: string | null;
  requestedType: RequestedType | null;
  phase: BackupPhase | null;
  type: BackupType | null;
  restorePointId: string | null;
  /** The point the agent reads changes since: an incremental's parent, or the point a synthetic full copies. */
  sincePointId: string | null;
  /** A synthetic full: the point whose view the hub copies into the new point's standalone files before the changes land. */
  synthesizedFrom: string | null;
  /** Disks of the VM its point will not hold, and why (the agent's plan). */
  disksLeftOut: DiskLeftOut[];
  targets: Target[];
  snapshotId: string | null;
  snapshotRemoved: boolean;
  targetsReleased: boolean;
  cancelRequested: boolean;
  /** The hub process that started the job (null before the start, or on jobs started before hubs recorded it). */
  startedBy: string | null;
  /** What the agent said of the snapshot's consistency, or null when it said nothing. */
  consistency: Consistency | null;
  disks: Record<string, DiskProgress>;
  /** The job id was given up before its request was recorded: it can never be requested. */
  voided: boolean;
}

/** The newest restore point of the chain as the type decision sees it. */
export interface LastPoint {
  restorePointId: string;
  disks: { diskId: string; virtualSize: number }[];
  /** Why the point must not be built on (a verify found it corrupt), or null. */
  corrupt: string | null;
  /** Points of its chain: its full, the incrementals between, and itself. */
  depth: number;
}

/** What the agent's plan says: whether its change tracking can continue the chain, and the disks as they are now. */
export interface PlanFacts {
  mode: BackupType;
  reason: string | null;
  disks: { diskId: string; virtualSize: number }[];
  /** Disks the agent cannot read: recorded with the decision, so the job and its point say what they lack. */
  leftOut?: DiskLeftOut[];
}

export type BackupJobCommand =
  /** Sent only by the request that holds the VM's claim (vm-claim.aggregate.ts): one unfinished job per VM is decided there. */
  | { kind: 'request'; jobId: string; vmId: string; agentId: string; repositoryId: string; requestedType: RequestedType }
  /** A claim names this job but its request never got recorded: make sure it never will be, so the VM can be claimed again. */
  | { kind: 'void'; jobId: string; reason: string }
  /** The hub that holds the agent's session takes the job; of two hubs that try, the first to append runs it. */
  | { kind: 'start'; hubInstance: string }
  /** The facts the choice between full and incremental rests on: the chain's newest point and what the agent can do. */
  | { kind: 'decideType'; restorePointId: string; last: LastPoint | null; plan: PlanFacts; maxChainDepth: number }
  | { kind: 'targetsPrepared'; targets: Target[] }
  | { kind: 'snapshotRequested' }
  | ({ kind: 'snapshotCreated'; snapshotId: string; diskIds: string[] } & Partial<Consistency>)
  | { kind: 'transferStarted'; diskId: string; bytesPlanned: number }
  | { kind: 'transferProgressed'; diskId: string; bytesDone: number; bytesPlanned: number; rate: number }
  | { kind: 'transferCompleted'; diskId: string; bytesWritten: number; bytesZeroed: number; bytesPlanned: number; durationMs: number; changeRef: string | null; bytesKnown?: number }
  | { kind: 'snapshotRemoved' }
  /** The agent's last word on its part: no fact of the job (the workflow acts on it), so nothing is recorded. */
  | { kind: 'agentFinished'; failure: string | null }
  | { kind: 'targetsReleased'; filesRemoved: string[] }
  | { kind: 'complete' }
  | { kind: 'fail'; reason: string; phase?: BackupPhase }
  /** From any hub: the hub running the job reads BackupCancelRequested from the event store and stops it. */
  | { kind: 'cancel'; jobId: string };

export const TERMINAL: BackupPhase[] = ['completed', 'failed'];

export function isTerminal(state: BackupJobState): boolean {
  return state.phase !== null && TERMINAL.includes(state.phase);
}

const emptyDisk = (): DiskProgress => ({ bytesDone: 0, bytesPlanned: 0, rate: 0, done: false, bytesWritten: 0, changeRef: null });

/**
 * One backup job. Facts from the agent that arrive after the job ended
 * (a late progress report, a second failure) change nothing.
 */
export const backupJobAggregate: Aggregate<BackupJobState, BackupJobCommand, BackupEvent> = {
  initialState: () => ({
    jobId: null,
    vmId: null,
    agentId: null,
    repositoryId: null,
    requestedType: null,
    phase: null,
    type: null,
    restorePointId: null,
    sincePointId: null,
    synthesizedFrom: null,
    disksLeftOut: [],
    targets: [],
    snapshotId: null,
    snapshotRemoved: false,
    targetsReleased: false,
    cancelRequested: false,
    startedBy: null,
    consistency: null,
    disks: {},
    voided: false,
  }),

  evolve(state, event) {
    const disk = (id: string) => state.disks[id] ?? emptyDisk();
    switch (event.type) {
      case BACKUP_REQUESTED:
        return { ...state, ...event.data, phase: 'queued' };
      case BACKUP_STARTED:
        return { ...state, phase: 'preparing', startedBy: event.data.hubInstance ?? null };
      case BACKUP_TYPE_DECIDED:
        return { ...state, type: event.data.type, restorePointId: event.data.restorePointId, sincePointId: event.data.sincePointId, synthesizedFrom: event.data.synthesizedFrom ?? null, disksLeftOut: event.data.disksLeftOut ?? [] };
      case BACKUP_TARGETS_PREPARED:
        return { ...state, targets: event.data.targets, disks: Object.fromEntries(event.data.targets.map((t) => [t.diskId, emptyDisk()])) };
      case SNAPSHOT_REQUESTED:
        return { ...state, phase: 'snapshot' };
      case SNAPSHOT_CREATED:
        return { ...state, phase: 'transferring', snapshotId: event.data.snapshotId, consistency: consistencyOf(event.data) };
      case DISK_TRANSFER_STARTED:
        return { ...state, disks: { ...state.disks, [event.data.diskId]: { ...disk(event.data.diskId), bytesPlanned: event.data.bytesPlanned } } };
      case DISK_TRANSFER_PROGRESSED: {
        const { diskId, bytesDone, bytesPlanned, rate } = event.data;
        return { ...state, disks: { ...state.disks, [diskId]: { ...disk(diskId), bytesDone, bytesPlanned, rate } } };
      }
      case DISK_TRANSFER_COMPLETED: {
        const { diskId, bytesWritten, bytesPlanned, changeRef } = event.data;
        return { ...state, disks: { ...state.disks, [diskId]: { ...disk(diskId), bytesDone: bytesPlanned, bytesPlanned, bytesWritten, changeRef, done: true, rate: 0 } } };
      }
      case SNAPSHOT_REMOVED:
        return { ...state, snapshotRemoved: true };
      case BACKUP_TARGETS_RELEASED:
        return { ...state, targetsReleased: true, phase: state.phase === 'transferring' || state.phase === 'snapshot' ? 'finalizing' : state.phase };
      case BACKUP_COMPLETED:
        return { ...state, phase: 'completed' };
      case BACKUP_FAILED:
        return { ...state, phase: 'failed' };
      case BACKUP_CANCEL_REQUESTED:
        return { ...state, cancelRequested: true };
      case BACKUP_REQUEST_VOIDED:
        return { ...state, voided: true };
    }
  },

  decide(command, state) {
    if (command.kind === 'request') {
      if (state.voided) throw new DomainError('conflict', `VM ${command.vmId}: the claim of backup job ${command.jobId} was taken over before its request was recorded`);
      if (state.jobId) throw new DomainError('conflict', `backup job ${command.jobId} already exists`);
      const { kind: _kind, ...data } = command;
      return [{ type: BACKUP_REQUESTED, data }];
    }
    if (command.kind === 'void') return state.jobId || state.voided ? [] : [{ type: BACKUP_REQUEST_VOIDED, data: { jobId: command.jobId, reason: command.reason } }];
    if (!state.jobId) throw new DomainError('not_found', `backup job ${command.kind === 'cancel' ? `${command.jobId} ` : ''}does not exist`);
    const jobId = state.jobId;
    if (isTerminal(state)) {
      if (command.kind === 'cancel') throw new DomainError('conflict', `backup job ${jobId} has already ${state.phase}`);
      // Cleanup facts may still be recorded after a failure; everything else is late news.
      if (command.kind === 'snapshotRemoved' && state.snapshotId && !state.snapshotRemoved) return [{ type: SNAPSHOT_REMOVED, data: { jobId, snapshotId: state.snapshotId } }];
      return [];
    }
    switch (command.kind) {
      case 'start':
        return state.phase === 'queued' ? [{ type: BACKUP_STARTED, data: { jobId, hubInstance: command.hubInstance } }] : [];
      case 'decideType': {
        const { type, reason, synthetic } = decideType(state.requestedType!, command.last, command.plan, command.maxChainDepth);
        const sincePointId = type === 'incremental' || synthetic ? command.last!.restorePointId : null;
        const synthesizedFrom = synthetic ? command.last!.restorePointId : null;
        return [{ type: BACKUP_TYPE_DECIDED, data: { jobId, type, reason, restorePointId: command.restorePointId, sincePointId, synthesizedFrom, disksLeftOut: command.plan.leftOut ?? [] } }];
      }
      case 'targetsPrepared':
        return [{ type: BACKUP_TARGETS_PREPARED, data: { jobId, targets: command.targets } }];
      case 'snapshotRequested':
        return [{ type: SNAPSHOT_REQUESTED, data: { jobId, agentId: state.agentId!, diskIds: state.targets.map((t) => t.diskId) } }];
      case 'snapshotCreated': {
        if (state.snapshotId) return [];
        const expected = state.targets.map((t) => t.diskId).sort();
        if (JSON.stringify([...command.diskIds].sort()) !== JSON.stringify(expected)) {
          throw new DomainError('invalid', `the snapshot must cover every disk (${expected.join(', ')}), got ${command.diskIds.join(', ')}`);
        }
        return [{ type: SNAPSHOT_CREATED, data: { jobId, snapshotId: command.snapshotId, diskIds: command.diskIds, ...consistencyOf(command) } }];
      }
      case 'transferStarted':
        requireDisk(state, command.diskId);
        return [{ type: DISK_TRANSFER_STARTED, data: { jobId, diskId: command.diskId, bytesPlanned: command.bytesPlanned } }];
      case 'transferProgressed':
        requireDisk(state, command.diskId);
        if (state.disks[command.diskId]?.done) return [];
        return [{ type: DISK_TRANSFER_PROGRESSED, data: { jobId, diskId: command.diskId, bytesDone: command.bytesDone, bytesPlanned: command.bytesPlanned, rate: command.rate } }];
      case 'transferCompleted': {
        requireDisk(state, command.diskId);
        if (state.disks[command.diskId]?.done) return [];
        const { kind: _k, ...data } = command;
        return [{ type: DISK_TRANSFER_COMPLETED, data: { jobId, ...data } }];
      }
      case 'snapshotRemoved':
        return state.snapshotId && !state.snapshotRemoved ? [{ type: SNAPSHOT_REMOVED, data: { jobId, snapshotId: state.snapshotId } }] : [];
      case 'agentFinished':
        return [];
      case 'targetsReleased':
        return state.targetsReleased ? [] : [{ type: BACKUP_TARGETS_RELEASED, data: { jobId, filesRemoved: command.filesRemoved } }];
      case 'complete': {
        const missing = state.targets.filter((t) => !state.disks[t.diskId]?.done).map((t) => t.diskId);
        if (missing.length || !state.targets.length) throw new DomainError('conflict', `backup job ${jobId} cannot complete: disks not transferred: ${missing.join(', ') || 'none prepared'}`);
        if (!state.targetsReleased) throw new DomainError('conflict', `backup job ${jobId} cannot complete before its exports are stopped`);
        const bytesWritten = Object.values(state.disks).reduce((n, d) => n + d.bytesWritten, 0);
        return [{ type: BACKUP_COMPLETED, data: { jobId, restorePointId: state.restorePointId!, bytesWritten } }];
      }
      case 'fail':
        return [{ type: BACKUP_FAILED, data: { jobId, phase: command.phase ?? state.phase!, reason: command.reason } }];
      case 'cancel':
        return state.cancelRequested ? [] : [{ type: BACKUP_CANCEL_REQUESTED, data: { jobId } }];
    }
  },
};

function requireDisk(state: BackupJobState, diskId: string): void {
  if (!state.targets.some((t) => t.diskId === diskId)) throw new DomainError('invalid', `disk ${diskId} is not part of backup job ${state.jobId}`);
}

/**
 * Full when asked for, when there is nothing sound to continue, or when the disks or their change tracking no longer
 * match the chain. A chain that already holds `maxChainDepth` points is not made longer: the changes since its newest
 * point are read as for an incremental, into a synthetic full (a standalone copy of that point's view), and the next
 * chain starts there. An explicit request for an incremental gets one too: what it asked of the VM, only the changes,
 * is what is read.
 */
function decideType(requested: RequestedType, last: LastPoint | null, plan: PlanFacts, maxChainDepth: number): { type: BackupType; reason: string; synthetic: boolean } {
  if (requested === 'full') return { type: 'full', reason: 'full backup requested', synthetic: false };
  const layoutChange = last && describeLayoutChange(last, plan.disks);
  const why = !last
    ? 'no restore point in this chain yet'
    : last.corrupt ?? layoutChange ?? (plan.mode === 'full' ? plan.reason ?? 'the source cannot continue the chain' : null);
  if (why === null && last!.depth >= maxChainDepth) {
    return {
      type: 'full',
      reason: `the chain holds ${last!.depth} restore points (the repository's maxChainDepth is ${maxChainDepth}): a synthetic full of ${last!.restorePointId} with the changes since it starts a new chain`,
      synthetic: true,
    };
  }
  if (why === null) return { type: 'incremental', reason: `changes since ${last!.restorePointId} (dirty bitmaps agree with the chain)`, synthetic: false };
  if (requested === 'incremental') throw new DomainError('conflict', `an incremental backup is not possible: ${why}`);
  return { type: 'full', reason: why, synthetic: false };
}

function describeLayoutChange(last: LastPoint, disks: { diskId: string; virtualSize: number }[]): string | null {
  const before = last.disks.map((d) => d.diskId).sort().join(',');
  const now = disks.map((d) => d.diskId).sort().join(',');
  if (before !== now) return `the VM's disks changed (${before} -> ${now})`;
  const resized = disks.find((d) => last.disks.find((l) => l.diskId === d.diskId)!.virtualSize > d.virtualSize);
  return resized ? `disk ${resized.diskId} shrank` : null;
}

/** What an agent report asks of the job. */
export function decisionOf(report: AgentReport): BackupJobCommand {
  switch (report.type) {
    case 'snapshot-created':
      return { kind: 'snapshotCreated', snapshotId: report.snapshotId, diskIds: report.diskIds, ...consistencyOf(report) };
    case 'transfer-started':
      return { kind: 'transferStarted', diskId: report.diskId, bytesPlanned: report.bytesPlanned };
    case 'transfer-progressed':
      return { kind: 'transferProgressed', diskId: report.diskId, bytesDone: report.bytesDone, bytesPlanned: report.bytesPlanned, rate: report.rate };
    case 'transfer-completed': {
      const { type: _t, ...data } = report;
      return { kind: 'transferCompleted', ...data };
    }
    case 'snapshot-removed':
      return { kind: 'snapshotRemoved' };
    case 'finished':
      return { kind: 'agentFinished', failure: null };
    case 'failed':
      return { kind: 'agentFinished', failure: report.reason };
  }
}

/** The three consistency fields when a snapshot carries them, else null (older agents, powered-off images). */
function consistencyOf(data: Partial<Consistency>): Consistency | null {
  if (data.consistency === undefined) return null;
  return { consistency: data.consistency, consistencyReason: data.consistencyReason ?? null, freezeMs: data.freezeMs ?? null };
}
