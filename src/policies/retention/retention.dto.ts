import { Matches } from 'class-validator';
import { PruneMark } from './prune';
import { PolicyRecord } from './selection';
import { ChainDecision, ChainOutcome } from './retention.workflow';

export class PolicyIdParams {
  @Matches(/^[A-Za-z0-9_-]{1,128}$/, { message: 'policy id must be 1-128 characters of A-Z a-z 0-9 _ -' })
  id!: string;
}

const markResponse = (m: PruneMark) => ({
  restorePointId: m.restorePointId,
  createdAt: m.createdAt,
  action: m.keep ? 'keep' : 'prune',
  rule: m.keep ? m.keptBy : m.prunedBy,
  period: m.period,
});

/** Newest point first in every chain; `rule` is the PBS rule that kept the point, or that pruned it (`no-rule`: past every count). */
export function retentionResponse(policy: PolicyRecord, chains: (ChainDecision | ChainOutcome)[]) {
  return {
    policyId: policy.policyId,
    retention: policy.definition.retention,
    timeZone: policy.definition.schedule.timezone,
    chains: chains.map((c) => ({
      vmId: c.vmId,
      repositoryId: c.repositoryId,
      marks: c.marks.map(markResponse),
      ...('pruned' in c ? { decided: c.decided, pruned: c.pruned, deferred: c.deferred } : {}),
    })),
  };
}
