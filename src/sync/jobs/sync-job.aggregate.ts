import { Aggregate } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { CalendarError, isValidTimeZone, parseCron } from '../../policies/calendar';
import { retentionProblems } from '../../policies/policy.aggregate';
import {
  SYNC_JOB_CREATED,
  SYNC_POINT_PROGRESSED,
  SYNC_POINT_REFUSED,
  SYNC_POINT_STARTED,
  SYNC_RETENTION_APPLIED,
  SYNC_RUN_ADOPTED,
  SYNC_RUN_COMPLETED,
  SYNC_RUN_FAILED,
  SYNC_RUN_STARTED,
  SyncJobDefinition,
  SyncJobEvent,
  SyncPointProgressed,
  SyncPointRefused,
  SyncPointStarted,
  SyncRetentionApplied,
  SyncRunCompleted,
  SyncRunFailed,
} from './sync-job.events';

export interface SyncJobState {
  definition: SyncJobDefinition | null;
  /** The run under way, if any. */
  running: { runId: string; hubInstance: string; point: SyncPointStarted['data'] | null } | null;
  /** The last point a run began and did not record: what a crashed run left (files here, an export on the remote). */
  unfinished: SyncPointStarted['data'] | null;
}

export type SyncJobCommand =
  | { kind: 'create'; definition: SyncJobDefinition }
  | { kind: 'startRun'; runId: string; trigger: 'manual' | 'schedule'; hubInstance: string }
  | { kind: 'startPoint'; point: Omit<SyncPointStarted['data'], 'syncJobId'> }
  | { kind: 'progress'; progress: Omit<SyncPointProgressed['data'], 'syncJobId'> }
  | { kind: 'refusePoint'; refusal: Omit<SyncPointRefused['data'], 'syncJobId'> }
  | { kind: 'completeRun'; result: Omit<SyncRunCompleted['data'], 'syncJobId'> }
  | { kind: 'failRun'; result: Omit<SyncRunFailed['data'], 'syncJobId'> }
  | { kind: 'adoptRun'; runId: string; from: string; hubInstance: string }
  | { kind: 'recordRetention'; result: Omit<SyncRetentionApplied['data'], 'syncJobId'> };

function runOf(state: SyncJobState, runId: string): NonNullable<SyncJobState['running']> {
  if (!state.definition) throw new DomainError('not_found', 'no such sync job');
  if (state.running?.runId !== runId) throw new DomainError('conflict', `run ${runId} is not the sync job's running run`);
  return state.running;
}

export const syncJobAggregate: Aggregate<SyncJobState, SyncJobCommand, SyncJobEvent> = {
  initialState: () => ({ definition: null, running: null, unfinished: null }),

  evolve(state, event) {
    switch (event.type) {
      case SYNC_JOB_CREATED: {
        const { syncJobId, remoteId, repositoryId, remoteRepositoryId, vms, schedule, timeZone, maxBytesPerSecond, retention } = event.data;
        return { ...state, definition: { syncJobId, remoteId, repositoryId, remoteRepositoryId, vms, schedule, timeZone, maxBytesPerSecond: maxBytesPerSecond ?? null, retention: retention ?? null } };
      }
      case SYNC_RUN_STARTED:
        return { ...state, running: { runId: event.data.runId, hubInstance: event.data.hubInstance, point: null } };
      case SYNC_POINT_STARTED:
        return { ...state, running: state.running && { ...state.running, point: { ...event.data } }, unfinished: { ...event.data } };
      case SYNC_RUN_COMPLETED:
        return { ...state, running: null, unfinished: null };
      case SYNC_RUN_ADOPTED:
        return { ...state, running: state.running && { ...state.running, hubInstance: event.data.hubInstance } };
      case SYNC_RUN_FAILED:
        // the point it was copying stays unfinished: its files and export are cleared by the next run
        return { ...state, running: null };
      case SYNC_RETENTION_APPLIED:
      case SYNC_POINT_PROGRESSED:
      case SYNC_POINT_REFUSED:
        return state;
    }
  },

  decide(command, state) {
    switch (command.kind) {
      case 'create': {
        const d = command.definition;
        if (state.definition) throw new DomainError('conflict', `sync job ${d.syncJobId} already exists`);
        if (d.timeZone !== null && !d.schedule && !d.retention) throw new DomainError('invalid', 'timeZone is given with a schedule or retention only');
        const problems = d.retention ? retentionProblems(d.retention) : [];
        if (problems.length) throw new DomainError('invalid', problems.join('; '));
        if (d.schedule) {
          try {
            parseCron(d.schedule);
          } catch (error) {
            throw new DomainError('invalid', error instanceof CalendarError ? error.message : String(error));
          }
        }
        if (d.timeZone !== null && !isValidTimeZone(d.timeZone)) throw new DomainError('invalid', `time zone "${d.timeZone}" is not an IANA time zone (for example Europe/Berlin, UTC)`);
        return [{ type: SYNC_JOB_CREATED, data: { ...d, vms: d.vms && [...d.vms], retention: d.retention && { ...d.retention } } }];
      }
      case 'startRun': {
        if (!state.definition) throw new DomainError('not_found', 'no such sync job');
        if (state.running) throw new DomainError('conflict', `sync job ${state.definition.syncJobId} is already running (run ${state.running.runId})`);
        return [{ type: SYNC_RUN_STARTED, data: { syncJobId: state.definition.syncJobId, runId: command.runId, trigger: command.trigger, hubInstance: command.hubInstance } }];
      }
      case 'startPoint':
        runOf(state, command.point.runId);
        return [{ type: SYNC_POINT_STARTED, data: { syncJobId: state.definition!.syncJobId, ...command.point } }];
      case 'progress':
        // a report that arrives after its run ended says nothing any more
        if (state.running?.runId !== command.progress.runId) return [];
        return [{ type: SYNC_POINT_PROGRESSED, data: { syncJobId: state.definition!.syncJobId, ...command.progress } }];
      case 'refusePoint':
        runOf(state, command.refusal.runId);
        return [{ type: SYNC_POINT_REFUSED, data: { syncJobId: state.definition!.syncJobId, ...command.refusal } }];
      case 'completeRun':
        runOf(state, command.result.runId);
        return [{ type: SYNC_RUN_COMPLETED, data: { syncJobId: state.definition!.syncJobId, ...command.result } }];
      case 'recordRetention':
        if (!state.definition) throw new DomainError('not_found', 'no such sync job');
        return [{ type: SYNC_RETENTION_APPLIED, data: { syncJobId: state.definition.syncJobId, ...command.result } }];
      case 'adoptRun':
        // another hub claimed it first, or its owner ended it after all
        if (state.running?.runId !== command.runId || state.running.hubInstance !== command.from) throw new DomainError('conflict', `run ${command.runId} is no longer ${command.from}'s to take over`);
        return [{ type: SYNC_RUN_ADOPTED, data: { syncJobId: state.definition!.syncJobId, runId: command.runId, from: command.from, hubInstance: command.hubInstance } }];
      case 'failRun':
        // a run already ended (its failure recorded by a hub that restarted) is not failed twice
        if (state.running?.runId !== command.result.runId) return [];
        return [{ type: SYNC_RUN_FAILED, data: { syncJobId: state.definition!.syncJobId, ...command.result } }];
    }
  },
};
