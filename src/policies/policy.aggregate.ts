import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { CalendarError, isValidTimeZone, parseCron } from './calendar';
import { POLICY_CREATED, POLICY_DELETED, POLICY_UPDATED, PolicyDefinition, PolicyEvent, RetentionRules } from './policy.events';
import { selects } from './retention/selection';

export interface PolicyState {
  policyId: string | null;
  definition: PolicyDefinition | null;
  deleted: boolean;
  /** Slots count from here: the creation, the last change of the schedule, or the last re-enable. */
  scheduleSince: string | null;
  /** Drill slots count from here: as `scheduleSince`, for the drill calendar. */
  drillSince: string | null;
}

export type PolicyCommand =
  | { kind: 'create'; policyId: string; definition: PolicyDefinition; at: string }
  | { kind: 'update'; policyId: string; definition: PolicyDefinition; at: string }
  | { kind: 'delete'; policyId: string; at: string };

const RETENTION_RULES: (keyof RetentionRules)[] = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'];

/** What is wrong with prune rules (a policy's, a sync job's): none given, or all keeping nothing. */
export function retentionProblems(retention: RetentionRules): string[] {
  const rules = RETENTION_RULES.filter((r) => retention[r] !== undefined && retention[r] !== null);
  if (!rules.length) return [`retention needs at least one rule (${RETENTION_RULES.join(', ')})`];
  if (rules.every((r) => retention[r] === 0)) return ['retention keeps nothing: at least one rule must keep 1 or more'];
  return [];
}

/** Everything wrong with a definition, each in words an operator can act on; [] when it is sound. */
export function problemsOf(definition: PolicyDefinition): string[] {
  const problems: string[] = [];
  try {
    parseCron(definition.schedule.cron);
  } catch (error) {
    problems.push(error instanceof CalendarError ? error.message : String(error));
  }
  if (definition.drill) {
    try {
      parseCron(definition.drill.cron);
    } catch (error) {
      problems.push(`drill: ${error instanceof CalendarError ? error.message : String(error)}`);
    }
  }
  if (!isValidTimeZone(definition.schedule.timezone)) problems.push(`time zone "${definition.schedule.timezone}" is not an IANA time zone (for example Europe/Berlin, UTC)`);
  problems.push(...retentionProblems(definition.retention));
  const { ids, namePattern, agentId } = definition.vms;
  if (!ids?.length && !namePattern && !agentId) problems.push('vms must name ids, a namePattern or an agentId');
  return problems;
}

function assertSound(definition: PolicyDefinition): void {
  const problems = problemsOf(definition);
  if (problems.length) throw new DomainError('invalid', problems.join('; '));
}

/** Whether the slots of the new definition start afresh: a new calendar, or a policy switched back on. */
function restartsSchedule(before: PolicyDefinition, after: PolicyDefinition): boolean {
  return before.schedule.cron !== after.schedule.cron || before.schedule.timezone !== after.schedule.timezone || (!before.enabled && after.enabled);
}

/** Whether the drill slots of the new definition start afresh: a new drill calendar, or drills switched (back) on. */
function restartsDrills(before: PolicyDefinition, after: PolicyDefinition): boolean {
  if (!after.drill) return false;
  return !before.drill || before.drill.cron !== after.drill.cron || before.schedule.timezone !== after.schedule.timezone || (!before.enabled && after.enabled);
}

/** A protection policy: what to back up, when, where, and how long to keep it. A deleted one stays deleted. */
export const policyAggregate: Aggregate<PolicyState, PolicyCommand, PolicyEvent> = {
  initialState: () => ({ policyId: null, definition: null, deleted: false, scheduleSince: null, drillSince: null }),

  evolve(state, event) {
    switch (event.type) {
      case POLICY_CREATED: {
        const { policyId, createdAt, ...definition } = event.data;
        return { policyId, definition, deleted: false, scheduleSince: createdAt, drillSince: definition.drill ? createdAt : null };
      }
      case POLICY_UPDATED: {
        const { policyId: _id, updatedAt, ...definition } = event.data;
        const restart = !state.definition || restartsSchedule(state.definition, definition);
        const drills = !state.definition || restartsDrills(state.definition, definition);
        return { ...state, definition, scheduleSince: restart ? updatedAt : state.scheduleSince, drillSince: !definition.drill ? null : drills ? updatedAt : state.drillSince };
      }
      case POLICY_DELETED:
        return { ...state, deleted: true };
    }
  },

  decide(command, state) {
    if (command.kind === 'create') {
      if (state.policyId) throw new DomainError('conflict', `policy ${command.policyId} already exists`);
      assertSound(command.definition);
      return [{ type: POLICY_CREATED, data: { policyId: command.policyId, ...command.definition, createdAt: command.at } }];
    }
    const { policyId } = command;
    if (!state.policyId || state.deleted) throw new DomainError('not_found', `policy ${policyId} does not exist`);
    if (command.kind === 'delete') return [{ type: POLICY_DELETED, data: { policyId, deletedAt: command.at } }];
    assertSound(command.definition);
    if (JSON.stringify(normalised(state.definition!)) === JSON.stringify(normalised(command.definition))) return [];
    return [{ type: POLICY_UPDATED, data: { policyId, ...command.definition, updatedAt: command.at } }];
  },
};

/** Key order does not make a change. */
function normalised(definition: PolicyDefinition): unknown {
  const sortKeys = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sortKeys) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])])) : v;
  return sortKeys(definition);
}

/** The VMs a policy protects among those the agents report, in id order: the retention's and the report's selection. */
export function selectVms<V extends { vmId: string; name: string; agentId: string }>(definition: PolicyDefinition, vms: V[]): V[] {
  return vms.filter((vm) => selects(definition.vms, vm)).sort((a, b) => a.vmId.localeCompare(b.vmId));
}
