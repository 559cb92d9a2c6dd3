import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, Matches, Max, Min } from 'class-validator';
import type { RetentionRules } from '../policy.events';
import { PruneMark } from './prune';
import { PolicyRecord } from './selection';
import { ChainDecision, ChainOutcome } from './retention.workflow';

export class PolicyIdParams {
  @ApiProperty()
  @Matches(/^[A-Za-z0-9_-]{1,128}$/, { message: 'policy id must be 1-128 characters of A-Z a-z 0-9 _ -' })
  id!: string;
}

const rule = () => applyDecorators(ApiPropertyOptional({ minimum: 0 }), IsOptional(), Type(() => Number), IsInt(), Min(0), Max(100_000));

/** Rules to preview instead of the policy's own, as a form holds them before they are saved. */
export class PreviewRulesQuery {
  @rule() keepLast?: number;
  @rule() keepHourly?: number;
  @rule() keepDaily?: number;
  @rule() keepWeekly?: number;
  @rule() keepMonthly?: number;
  @rule() keepYearly?: number;
}

/** The rules the query names, or none when it names none. */
export function previewRules(q: PreviewRulesQuery): RetentionRules | undefined {
  const rules = Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined)) as RetentionRules;
  return Object.keys(rules).length ? rules : undefined;
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
