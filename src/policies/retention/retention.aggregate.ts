import { Aggregate } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { PruneMark, RetentionRules } from './prune';
import { RETENTION_DECIDED, RETENTION_PRUNE_DEFERRED, RetentionEvent, RetentionMark, RetentionTrigger } from './retention.events';

export interface DeferredPrune {
  vmId: string;
  repositoryId: string;
  reason: string;
}

export interface RetentionState {
  /** Backups this policy already decided after, newest last (bounded: a backup is decided on within minutes of completing). */
  decidedBackups: string[];
  /** Points a decision pruned that were in use, by restore point id, until the next decision on their chain. */
  deferred: Record<string, DeferredPrune>;
}

export type RetentionCommand =
  | { kind: 'decide'; policyId: string; vmId: string; repositoryId: string; trigger: RetentionTrigger; rules: RetentionRules; timeZone: string; decidedAt: string; marks: PruneMark[] }
  | { kind: 'defer'; policyId: string; vmId: string; repositoryId: string; restorePointId: string; reason: string };

const REMEMBERED_BACKUPS = 500;

export function toRetentionMark(m: PruneMark): RetentionMark {
  return m.keep
    ? { restorePointId: m.restorePointId, createdAt: m.createdAt, keptBy: m.keptBy, period: m.period }
    : { restorePointId: m.restorePointId, createdAt: m.createdAt, prunedBy: m.prunedBy, period: m.period };
}

/**
 * A policy's retention decisions. The decision after a backup is made once: hubs that all see the
 * backup complete race on this stream's expected revision, and whoever appends second finds the
 * backup already decided and does nothing (so no point is deleted twice).
 */
export const retentionAggregate: Aggregate<RetentionState, RetentionCommand, RetentionEvent> = {
  initialState: () => ({ decidedBackups: [], deferred: {} }),

  evolve(state, event) {
    switch (event.type) {
      case RETENTION_DECIDED: {
        const { trigger, vmId, repositoryId } = event.data;
        const deferred = Object.fromEntries(Object.entries(state.deferred).filter(([, d]) => d.vmId !== vmId || d.repositoryId !== repositoryId));
        const decidedBackups = trigger.kind === 'backup' ? [...state.decidedBackups, trigger.backupId].slice(-REMEMBERED_BACKUPS) : state.decidedBackups;
        return { decidedBackups, deferred };
      }
      case RETENTION_PRUNE_DEFERRED: {
        const { restorePointId, vmId, repositoryId, reason } = event.data;
        return { ...state, deferred: { ...state.deferred, [restorePointId]: { vmId, repositoryId, reason } } };
      }
    }
  },

  decide(command, state) {
    if (command.kind === 'defer') {
      const { policyId, vmId, repositoryId, restorePointId, reason } = command;
      if (state.deferred[restorePointId]?.reason === reason) return [];
      return [{ type: RETENTION_PRUNE_DEFERRED, data: { policyId, vmId, repositoryId, restorePointId, reason } }];
    }
    const { policyId, vmId, repositoryId, trigger, rules, timeZone, decidedAt, marks } = command;
    if (trigger.kind === 'backup' && state.decidedBackups.includes(trigger.backupId)) return [];
    if (new Set(marks.map((m) => m.restorePointId)).size !== marks.length) throw new DomainError('invalid', 'a retention decision names each restore point once');
    // PBS never prunes the newest point while any rule keeps something; a decision that would is a bug, not a policy.
    if (marks.length > 0 && !marks[0].keep) throw new DomainError('invalid', `a retention decision must keep the newest restore point ${marks[0].restorePointId}`);
    return [{ type: RETENTION_DECIDED, data: { policyId, vmId, repositoryId, trigger, rules, timeZone, decidedAt, marks: marks.map(toRetentionMark) } }];
  },
};
