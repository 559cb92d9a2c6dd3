import { fold } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { policyAggregate, PolicyCommand, problemsOf, selectVms } from './policy.aggregate';
import { nameMatches } from './retention/selection';
import { POLICY_CREATED, POLICY_DELETED, POLICY_UPDATED, PolicyDefinition, PolicyEvent } from './policy.events';

const definition = (over: Partial<PolicyDefinition> = {}): PolicyDefinition => ({
  name: 'nightly',
  vms: { namePattern: 'web-*' },
  repositoryId: 'repo-1',
  schedule: { cron: '30 2 * * *', timezone: 'Europe/Berlin', catchUp: 'once' },
  fullEvery: 7,
  retention: { keepLast: 2, keepDaily: 7 },
  rpoHours: 26,
  enabled: true,
  ...over,
});

const given = (...events: PolicyEvent[]) => fold(policyAggregate, events);
const when = (events: PolicyEvent[], command: PolicyCommand) => policyAggregate.decide(command, given(...events));
const created: PolicyEvent = { type: POLICY_CREATED, data: { policyId: 'p1', ...definition(), createdAt: '2025-01-01T00:00:00.000Z' } };

describe('policy decider', () => {
  it('creates a sound policy, with the time its slots count from', () => {
    expect(when([], { kind: 'create', policyId: 'p1', definition: definition(), at: '2025-01-01T00:00:00.000Z' })).toEqual([created]);
    expect(given(created)).toMatchObject({ policyId: 'p1', deleted: false, scheduleSince: '2025-01-01T00:00:00.000Z' });
  });

  it('refuses a bad definition with every reason at once, as invalid input', () => {
    const bad = definition({ schedule: { cron: '61 * * * *', timezone: 'Europe/Berlinn', catchUp: 'once' }, retention: {}, vms: {} });
    const attempt = () => when([], { kind: 'create', policyId: 'p1', definition: bad, at: 'now' });
    expect(attempt).toThrow(DomainError);
    expect(attempt).toThrow(/minute field "61".*time zone "Europe\/Berlinn" is not an IANA time zone.*retention needs at least one rule.*vms must name/);
    expect(problemsOf(definition({ retention: { keepLast: 0 } }))).toEqual(['retention keeps nothing: at least one rule must keep 1 or more']);
  });

  it('refuses a second create of one id', () => {
    expect(() => when([created], { kind: 'create', policyId: 'p1', definition: definition(), at: 'now' })).toThrow(/already exists/);
  });

  it('records an update as the whole new definition; an identical one records nothing', () => {
    const changed = definition({ rpoHours: 12 });
    expect(when([created], { kind: 'update', policyId: 'p1', definition: changed, at: 't2' })).toEqual([{ type: POLICY_UPDATED, data: { policyId: 'p1', ...changed, updatedAt: 't2' } }]);
    expect(when([created], { kind: 'update', policyId: 'p1', definition: { ...definition(), retention: { keepDaily: 7, keepLast: 2 } }, at: 't2' })).toEqual([]);
  });

  it('counts slots afresh when the calendar changes or the policy is switched back on, not for other changes', () => {
    const update = (over: Partial<PolicyDefinition>, at: string): PolicyEvent => ({ type: POLICY_UPDATED, data: { policyId: 'p1', ...definition(over), updatedAt: at } });
    expect(given(created, update({ rpoHours: 3 }, 't2')).scheduleSince).toBe('2025-01-01T00:00:00.000Z');
    expect(given(created, update({ schedule: { cron: '0 3 * * *', timezone: 'Europe/Berlin', catchUp: 'once' } }, 't2')).scheduleSince).toBe('t2');
    expect(given(created, update({ enabled: false }, 't2'), update({ enabled: true }, 't3')).scheduleSince).toBe('t3');
  });

  it('checks a drill calendar like the schedule, and counts drill slots afresh when it is set, changed or switched back on', () => {
    expect(problemsOf(definition({ drill: { cron: '* 25 * * *', timeoutSeconds: 300 } }))).toEqual([expect.stringMatching(/^drill: .*hour field "25"/)]);
    const drill = { cron: '0 4 * * 0', timeoutSeconds: 300 };
    const update = (over: Partial<PolicyDefinition>, at: string): PolicyEvent => ({ type: POLICY_UPDATED, data: { policyId: 'p1', ...definition(over), updatedAt: at } });
    expect(given(created).drillSince).toBeNull();
    expect(given(created, update({ drill }, 't2')).drillSince).toBe('t2');
    expect(given(created, update({ drill }, 't2'), update({ drill, rpoHours: 3 }, 't3')).drillSince).toBe('t2');
    expect(given(created, update({ drill }, 't2'), update({ drill: { ...drill, cron: '0 5 * * 0' } }, 't3')).drillSince).toBe('t3');
    expect(given(created, update({ drill }, 't2'), update({ drill, enabled: false }, 't3'), update({ drill }, 't4')).drillSince).toBe('t4');
    expect(given(created, update({ drill }, 't2'), update({}, 't3')).drillSince).toBeNull();
  });

  it('deletes once; a deleted policy is not found for anything else', () => {
    const deleted: PolicyEvent = { type: POLICY_DELETED, data: { policyId: 'p1', deletedAt: 't3' } };
    expect(when([created], { kind: 'delete', policyId: 'p1', at: 't3' })).toEqual([deleted]);
    expect(() => when([created, deleted], { kind: 'delete', policyId: 'p1', at: 't4' })).toThrow(/policy p1 does not exist/);
    expect(() => when([created, deleted], { kind: 'update', policyId: 'p1', definition: definition(), at: 't4' })).toThrow(DomainError);
    expect(() => when([], { kind: 'update', policyId: 'p9', definition: definition(), at: 't4' })).toThrow(/policy p9 does not exist/);
  });
});

describe('VM selection', () => {
  const vms = [
    { vmId: 'b', name: 'web-2', agentId: 'a1' },
    { vmId: 'a', name: 'web-1', agentId: 'a2' },
    { vmId: 'c', name: 'db-1', agentId: 'a1' },
  ];

  it('takes every VM that meets all given conditions, in id order', () => {
    expect(selectVms(definition({ vms: { namePattern: 'web-*' } }), vms).map((v) => v.vmId)).toEqual(['a', 'b']);
    expect(selectVms(definition({ vms: { namePattern: 'web-*', agentId: 'a1' } }), vms).map((v) => v.vmId)).toEqual(['b']);
    expect(selectVms(definition({ vms: { ids: ['c', 'zz'] } }), vms).map((v) => v.vmId)).toEqual(['c']);
    expect(selectVms(definition({ vms: { agentId: 'a1' } }), vms).map((v) => v.vmId)).toEqual(['b', 'c']);
  });

  it('reads a name pattern as a glob, everything but * and ? literally', () => {
    expect(nameMatches('web-?', 'web-1')).toBe(true);
    expect(nameMatches('web.1', 'webx1')).toBe(false);
    expect(nameMatches('*', 'anything')).toBe(true);
    expect(nameMatches('w*b-*-?', 'web-prod-1')).toBe(true);
    expect(nameMatches('web-*-?', 'web-prod-12')).toBe(false);
    expect(nameMatches('[ab]*', '[ab]c')).toBe(true);
    expect(nameMatches('a**', 'a')).toBe(true);
  });

  it('answers a pattern that would make a backtracking RegExp run for hours at once', () => {
    const started = Date.now();
    expect(nameMatches(`${'*'.repeat(200)}x`, 'web-server-production-01'.repeat(10))).toBe(false);
    expect(nameMatches('*a'.repeat(100), 'a'.repeat(255))).toBe(true);
    expect(nameMatches(`${'*a'.repeat(100)}b`, 'a'.repeat(255))).toBe(false);
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('selects nothing with an empty selector, as the decider refuses one', () => {
    expect(selectVms(definition({ vms: {} }), vms)).toEqual([]);
  });
});
