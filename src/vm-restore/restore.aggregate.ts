import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import type { DamagedBlock, MinimalDefinition, RestoreReport, RestoreTarget } from '../wire/restore-protocol';
import {
  KnownDamage,
  DrillScreenshotRef,
  INSTANT_RECOVERY_LOCAL,
  INSTANT_RECOVERY_RESUMED,
  INSTANT_RECOVERY_RUNNING,
  INSTANT_RECOVERY_STALLED,
  RECOVERY_DRILL_FAILED,
  RECOVERY_DRILL_PASSED,
  RESTORE_CANCEL_REQUESTED,
  RESTORE_CANCELLED,
  RESTORE_COMPLETED,
  RESTORE_DISK_COMPLETED,
  RESTORE_DISK_PROGRESSED,
  RESTORE_DISKS_PLANNED,
  RESTORE_DOMAIN_DEFINED,
  RESTORE_FAILED,
  RESTORE_REQUESTED,
  RESTORE_STARTED,
  RestoreEvent,
  RestoreExport,
  RestorePhase,
} from './restore.events';

export interface RestoreDiskState {
  diskId: string;
  path: string | null;
  bytesDone: number;
  bytesPlanned: number;
  rate: number;
  done: boolean;
  verifiedBlocks: number;
}

export interface RestoreState {
  restoreId: string | null;
  restorePointId: string | null;
  vmId: string | null;
  repositoryId: string | null;
  agentId: string | null;
  mode: 'full' | 'instant' | null;
  /** When the restore was asked for (absent on none recorded before instant recovery). */
  requestedAt: string | null;
  target: RestoreTarget | null;
  definition: MinimalDefinition | null;
  phase: RestorePhase | null;
  startedBy: string | null;
  exports: RestoreExport[];
  disks: Record<string, RestoreDiskState>;
  domain: { name: string; uuid: string; started?: boolean } | null;
  cancelRequested: boolean;
  /** Why an instant recovery's background copy waits, while it does. */
  stalled: string | null;
}

export type RestoreCommand =
  | { kind: 'request'; restoreId: string; restorePointId: string; vmId: string; repositoryId: string; agentId: string; mode: 'full' | 'instant'; target: RestoreTarget; definition: MinimalDefinition | null; force: boolean; knownDamage: KnownDamage[]; requestedAt: string }
  | { kind: 'start'; hubInstance: string; exports: RestoreExport[] }
  /** An agent report that is a fact of the restore (progress); `finished` and `failed` are the workflow's to act on. */
  | { kind: 'report'; report: Exclude<RestoreReport, { type: 'finished' } | { type: 'failed' } | { type: 'drill-finished' }>; sinceRequestMs?: number }
  | { kind: 'complete'; domain: { name: string; uuid: string; started: boolean }; durationMs: number }
  | { kind: 'fail'; reason: string; damaged: DamagedBlock[] }
  | { kind: 'cancel' }
  | { kind: 'cancelled' }
  | { kind: 'drillResult'; passed: boolean; bootMs: number | null; reason: string | null; consistency: 'application' | 'crash' | null; screenshot: DrillScreenshotRef | null };

export const isTerminal = (s: RestoreState) => s.phase === 'completed' || s.phase === 'failed' || s.phase === 'cancelled';

const disk = (diskId: string): RestoreDiskState => ({ diskId, path: null, bytesDone: 0, bytesPlanned: 0, rate: 0, done: false, verifiedBlocks: 0 });

/** One restore, from request to its end: the rules about what may follow what. */
export const restoreAggregate: Aggregate<RestoreState, RestoreCommand, RestoreEvent> = {
  initialState: () => ({ restoreId: null, restorePointId: null, vmId: null, repositoryId: null, agentId: null, mode: null, requestedAt: null, target: null, definition: null, phase: null, startedBy: null, exports: [], disks: {}, domain: null, cancelRequested: false, stalled: null }),

  evolve(state, event) {
    switch (event.type) {
      case RESTORE_REQUESTED: {
        const d = event.data;
        return { ...state, restoreId: d.restoreId, restorePointId: d.restorePointId, vmId: d.vmId, repositoryId: d.repositoryId, agentId: d.agentId, mode: d.mode, requestedAt: d.requestedAt ?? null, target: d.target, definition: d.definition, phase: 'requested' };
      }
      case RESTORE_STARTED:
        return { ...state, phase: 'writing', startedBy: event.data.hubInstance, exports: event.data.disks, disks: Object.fromEntries(event.data.disks.map((d) => [d.diskId, disk(d.diskId)])) };
      case RESTORE_DISKS_PLANNED:
        return { ...state, disks: Object.fromEntries(event.data.disks.map((d) => [d.diskId, { ...(state.disks[d.diskId] ?? disk(d.diskId)), path: d.path }])) };
      case RESTORE_DISK_PROGRESSED: {
        const { diskId, bytesDone, bytesPlanned, rate } = event.data;
        return { ...state, disks: { ...state.disks, [diskId]: { ...(state.disks[diskId] ?? disk(diskId)), bytesDone, bytesPlanned, rate } } };
      }
      case RESTORE_DISK_COMPLETED: {
        const { diskId, bytesPlanned, verifiedBlocks } = event.data;
        return { ...state, disks: { ...state.disks, [diskId]: { ...(state.disks[diskId] ?? disk(diskId)), bytesDone: bytesPlanned, bytesPlanned, done: true, verifiedBlocks } } };
      }
      case RESTORE_DOMAIN_DEFINED:
        return { ...state, phase: 'defining', domain: { name: event.data.name, uuid: event.data.uuid } };
      case INSTANT_RECOVERY_RUNNING:
        return { ...state, phase: 'pulling', domain: { name: event.data.name, uuid: event.data.uuid, started: true } };
      case INSTANT_RECOVERY_STALLED:
        return { ...state, stalled: event.data.reason };
      case INSTANT_RECOVERY_RESUMED:
        return { ...state, stalled: null };
      case INSTANT_RECOVERY_LOCAL:
        return { ...state, stalled: null, disks: Object.fromEntries(Object.values(state.disks).map((d) => [d.diskId, { ...d, done: true, bytesDone: d.bytesPlanned }])) };
      case RESTORE_COMPLETED:
        return { ...state, phase: 'completed', domain: event.data.domain, stalled: null };
      case RESTORE_FAILED:
        return { ...state, phase: 'failed', stalled: null };
      case RESTORE_CANCEL_REQUESTED:
        return { ...state, cancelRequested: true };
      case RESTORE_CANCELLED:
        return { ...state, phase: 'cancelled', stalled: null };
      case RECOVERY_DRILL_PASSED:
        return { ...state, phase: 'completed' };
      case RECOVERY_DRILL_FAILED:
        return { ...state, phase: 'failed' };
    }
  },

  decide(command, state) {
    if (command.kind === 'request') {
      if (state.restoreId) throw new DomainError('conflict', `restore ${command.restoreId} already exists`);
      const { kind: _kind, ...data } = command;
      return [{ type: RESTORE_REQUESTED, data }];
    }
    if (!state.restoreId) throw new DomainError('not_found', 'restore does not exist');
    const restoreId = state.restoreId;
    if (isTerminal(state)) {
      if (command.kind === 'cancel') throw new DomainError('conflict', `restore ${restoreId} has ended (${state.phase})`);
      // late reports of an ended restore change nothing
      if (command.kind === 'report') return [];
      throw new DomainError('conflict', `restore ${restoreId} has ended (${state.phase})`);
    }
    switch (command.kind) {
      case 'start':
        if (state.phase !== 'requested') return [];
        return [{ type: RESTORE_STARTED, data: { restoreId, hubInstance: command.hubInstance, disks: command.exports } }];
      case 'report': {
        if (state.phase === 'requested') throw new DomainError('conflict', `restore ${restoreId} has not started`);
        const r = command.report;
        const known = (diskId: string) => {
          if (!state.disks[diskId]) throw new DomainError('invalid', `restore ${restoreId} has no disk ${diskId}`);
        };
        switch (r.type) {
          case 'restore-started':
            r.disks.forEach((d) => known(d.diskId));
            return [{ type: RESTORE_DISKS_PLANNED, data: { restoreId, disks: r.disks } }];
          case 'disk-progressed':
            known(r.diskId);
            return [{ type: RESTORE_DISK_PROGRESSED, data: { restoreId, diskId: r.diskId, bytesDone: r.bytesDone, bytesPlanned: r.bytesPlanned, rate: r.rate } }];
          case 'disk-completed':
            known(r.diskId);
            return [{ type: RESTORE_DISK_COMPLETED, data: { restoreId, diskId: r.diskId, bytesWritten: r.bytesWritten, bytesZeroed: r.bytesZeroed, bytesPlanned: r.bytesPlanned, durationMs: r.durationMs, verifiedBlocks: r.verifiedBlocks } }];
          case 'domain-defined':
            return [{ type: RESTORE_DOMAIN_DEFINED, data: { restoreId, name: r.name, uuid: r.uuid } }];
          case 'instant-running':
            if (state.mode !== 'instant') throw new DomainError('conflict', `restore ${restoreId} is not an instant recovery`);
            return [{ type: INSTANT_RECOVERY_RUNNING, data: { restoreId, name: r.name, uuid: r.uuid, runningMs: command.sinceRequestMs ?? 0 } }];
          case 'copy-stalled':
            if (state.phase !== 'pulling') throw new DomainError('conflict', `restore ${restoreId} has no background copy under way`);
            // the agent says it again at every check while the reason holds: one event per change
            if (r.reason === state.stalled) return [];
            return r.reason === null ? [{ type: INSTANT_RECOVERY_RESUMED, data: { restoreId } }] : [{ type: INSTANT_RECOVERY_STALLED, data: { restoreId, reason: r.reason } }];
        }
        return [];
      }
      case 'complete': {
        // an instant recovery's disks are local when its agent says so: its progress reports may have met a hub that was away
        const pending = state.phase === 'pulling' ? [] : Object.values(state.disks).filter((d) => !d.done).map((d) => d.diskId);
        if (pending.length) throw new DomainError('conflict', `restore ${restoreId} cannot complete: disks ${pending.join(', ')} were not written`);
        const completed = { type: RESTORE_COMPLETED, data: { restoreId, domain: command.domain, durationMs: command.durationMs } } as const;
        return state.phase === 'pulling' ? [{ type: INSTANT_RECOVERY_LOCAL, data: { restoreId, durationMs: command.durationMs } }, completed] : [completed];
      }
      case 'fail':
        return [{ type: RESTORE_FAILED, data: { restoreId, reason: command.reason, phase: state.phase!, damaged: command.damaged } }];
      case 'cancel':
        return state.cancelRequested ? [] : [{ type: RESTORE_CANCEL_REQUESTED, data: { restoreId } }];
      case 'cancelled':
        return [{ type: RESTORE_CANCELLED, data: { restoreId, phase: state.phase! } }];
      case 'drillResult': {
        if (state.target?.kind !== 'drill') throw new DomainError('conflict', `restore ${restoreId} is not a drill`);
        const base = { restoreId, restorePointId: state.restorePointId!, vmId: state.vmId!, screenshot: command.screenshot };
        if (command.passed && command.bootMs !== null) return [{ type: RECOVERY_DRILL_PASSED, data: { ...base, bootMs: command.bootMs, consistency: command.consistency } }];
        return [{ type: RECOVERY_DRILL_FAILED, data: { ...base, reason: command.reason ?? 'the drill failed' } }];
      }
    }
  },
};
