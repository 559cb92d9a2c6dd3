import { DomainEvent } from '../../eventing/aggregate';
import { KeepReason, PruneReason, RetentionRules } from './prune';

export const RETENTION_DECIDED = 'RetentionDecided';
export const RETENTION_PRUNE_DEFERRED = 'RetentionPruneDeferred';

/** What made the policy decide: a backup of one of its VMs completed, an operator asked, or a deferred prune is tried again. */
export type RetentionTrigger = { kind: 'backup'; backupId: string } | { kind: 'manual' } | { kind: 'retry' };

/** One restore point of the chain and the rule that kept or pruned it (PBS's mark, with the period it was read in). */
export type RetentionMark =
  | { restorePointId: string; createdAt: string; keptBy: KeepReason; period: string | null }
  | { restorePointId: string; createdAt: string; prunedBy: PruneReason; period: string | null };

/**
 * The policy's rules applied to one chain (`vmId` in `repositoryId`), newest point first. Points marked
 * `prunedBy` are deleted next through the chain's own delete (one RestorePointDeleteStarted/Deleted per
 * point on the chain stream, caused by this event).
 */
export type RetentionDecided = DomainEvent<
  typeof RETENTION_DECIDED,
  { policyId: string; vmId: string; repositoryId: string; trigger: RetentionTrigger; rules: RetentionRules; timeZone: string; decidedAt: string; marks: RetentionMark[] }
>;
/** A point the decision pruned is in use (mounted, exported, read by a running backup): it stays for now and is tried again later. */
export type RetentionPruneDeferred = DomainEvent<typeof RETENTION_PRUNE_DEFERRED, { policyId: string; vmId: string; repositoryId: string; restorePointId: string; reason: string }>;

export type RetentionEvent = RetentionDecided | RetentionPruneDeferred;

export const RETENTION_STREAM_PREFIX = 'retention-';
/** One stream per policy: every decision the policy made and every prune it had to put off. */
export const retentionStream = (policyId: string) => `${RETENTION_STREAM_PREFIX}${policyId}`;
