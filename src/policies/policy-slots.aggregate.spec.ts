import { fold } from '../eventing/aggregate';
import { parseCron } from './calendar';
import { LATE_AFTER_MS, planSlots, policySlotsAggregate, PolicySlotsCommand, requestedTypeFor } from './policy-slots.aggregate';
import { PolicySlotEvent, SLOT_FIRED, SLOT_MISSED, SLOT_RETRIED, SLOT_SKIPPED } from './policy-slots.events';

const given = (...events: PolicySlotEvent[]) => fold(policySlotsAggregate, events);
const when = (events: PolicySlotEvent[], command: PolicySlotsCommand) => policySlotsAggregate.decide(command, given(...events));

const fire = (basedOn: string | null, slot: string, vms: { vmId: string; jobId: string }[], fullEvery: number | null = null): PolicySlotsCommand => ({
  kind: 'fire',
  policyId: 'p1',
  basedOn,
  missed: null,
  fire: [{ slot, catchUp: false }],
  vms: [vms],
  fullEvery,
  at: slot,
  hubInstance: 'hub-a',
});
const fired = (slot: string, vmId: string, jobId: string, requestedType: 'full' | 'auto' = 'auto', manual = false): PolicySlotEvent => ({
  type: SLOT_FIRED,
  data: { policyId: 'p1', slot, vmId, jobId, requestedType, manual, catchUp: false, firedAt: slot, hubInstance: 'hub-a' },
});

const S1 = '2025-06-01T12:00:10.000Z';
const S2 = '2025-06-01T12:00:20.000Z';

describe('policy slots decider', () => {
  it('takes a slot for each VM, naming the job it will request', () => {
    expect(when([], fire(null, S1, [{ vmId: 'vm1', jobId: 'j1' }, { vmId: 'vm2', jobId: 'j2' }]))).toEqual([fired(S1, 'vm1', 'j1'), fired(S1, 'vm2', 'j2')]);
    expect(given(fired(S1, 'vm1', 'j1'))).toMatchObject({ lastSlot: S1, backups: { vm1: 1 }, open: [{ slot: S1, vmId: 'vm1', jobId: 'j1', requestedType: 'auto', attempt: 1 }] });
  });

  it('records nothing for a hub that planned on an older state: the slot was taken by another hub', () => {
    const history = [fired(S1, 'vm1', 'j1')];
    expect(when(history, fire(null, S1, [{ vmId: 'vm1', jobId: 'other' }]))).toEqual([]);
    expect(when(history, fire(S1, S2, [{ vmId: 'vm1', jobId: 'j2' }]))).toEqual([fired(S2, 'vm1', 'j2')]);
  });

  it('makes every fullEvery-th backup a full, counting only backups that were not skipped', () => {
    expect([0, 1, 2, 3].map((n) => requestedTypeFor(n, 3))).toEqual(['full', 'auto', 'auto', 'full']);
    expect(requestedTypeFor(0, null)).toBe('auto');
    const skipped: PolicySlotEvent = { type: SLOT_SKIPPED, data: { policyId: 'p1', slot: S1, vmId: 'vm1', jobId: 'j1', reason: 'busy' } };
    expect(when([fired(S1, 'vm1', 'j1', 'full'), skipped], fire(S1, S2, [{ vmId: 'vm1', jobId: 'j2' }], 3))).toEqual([fired(S2, 'vm1', 'j2', 'full')]);
  });

  it('records a slot with no VM as skipped, so the calendar moves on', () => {
    expect(when([], fire(null, S1, []))).toEqual([{ type: SLOT_SKIPPED, data: { policyId: 'p1', slot: S1, vmId: null, jobId: null, reason: 'the policy selects no VM' } }]);
    expect(given(...when([], fire(null, S1, []))).lastSlot).toBe(S1);
  });

  it('records the missed slots before the one that runs', () => {
    const command = { ...fire(null, S2, [{ vmId: 'vm1', jobId: 'j2' }]), missed: { firstSlot: S1, slot: S1, count: 1, reason: 'down' } };
    expect(when([], command).map((e) => e.type)).toEqual([SLOT_MISSED, SLOT_FIRED]);
  });

  it('skips a taken slot once, and a manual run does not move the calendar', () => {
    const skip: PolicySlotsCommand = { kind: 'skip', policyId: 'p1', slot: S1, vmId: 'vm1', jobId: 'j1', reason: 'VM vm1 already has a backup job running: j0' };
    const events = when([fired(S1, 'vm1', 'j1')], skip);
    expect(events).toEqual([{ type: SLOT_SKIPPED, data: { policyId: 'p1', slot: S1, vmId: 'vm1', jobId: 'j1', reason: 'VM vm1 already has a backup job running: j0' } }]);
    expect(when([fired(S1, 'vm1', 'j1'), ...events], skip)).toEqual([]);
    const run = when([fired(S1, 'vm1', 'j1')], { kind: 'run', policyId: 'p1', slot: S2, vms: [{ vmId: 'vm1', jobId: 'm1' }], fullEvery: null, at: S2, hubInstance: 'hub-b' });
    expect(run).toEqual([{ ...fired(S2, 'vm1', 'm1', 'auto', true), data: { ...fired(S2, 'vm1', 'm1', 'auto', true).data, hubInstance: 'hub-b' } }]);
    expect(given(fired(S1, 'vm1', 'j1'), ...run).lastSlot).toBe(S1);
  });

  it('keeps every VM of the newest slot open, however many the policy selects (older slots fill what is left of 100): a VM not yet requested is still looked after, and its skip recorded', () => {
    const vms = (slot: string, n: number) => Array.from({ length: n }, (_, i) => ({ vmId: `vm${String(i).padStart(3, '0')}`, jobId: `${slot}-j${i}` }));
    const first = when([], fire(null, S1, vms(S1, 150)));
    const second = when(first, fire(S1, S2, vms(S2, 150)));
    const state = given(...first, ...second);
    expect(state.open.filter((o) => o.slot === S2)).toHaveLength(150);
    // of the slot before, the newest of its VMs up to the limit beside the newest slot's
    expect(state.open.filter((o) => o.slot === S1)).toHaveLength(0);
    expect(given(...first).open).toHaveLength(150);
    // the first VM of a 150-VM slot, the first the limit dropped before: its skip is recorded
    const skip: PolicySlotsCommand = { kind: 'skip', policyId: 'p1', slot: S2, vmId: 'vm000', jobId: `${S2}-j0`, reason: 'VM vm000 already has a backup job running: j0' };
    expect(when([...first, ...second], skip).map((e) => e.type)).toEqual([SLOT_SKIPPED]);
    // a run asked for while the slot's VMs are still being requested drops none of them
    const run = policySlotsAggregate.decide({ kind: 'run', policyId: 'p1', slot: '2025-06-01T12:00:25.000Z', vms: [{ vmId: 'vm000', jobId: 'm1' }], fullEvery: null, at: '2025-06-01T12:00:25.000Z', hubInstance: 'hub-b' }, state);
    const withRun = given(...first, ...second, ...run);
    expect(withRun.open.filter((o) => o.slot === S2)).toHaveLength(150);
    expect(withRun.open.filter((o) => o.manual)).toHaveLength(1);
    // below the limit, older slots stay as they were
    const small = given(...when([], fire(null, S1, vms(S1, 40))), ...when(when([], fire(null, S1, vms(S1, 40))), fire(S1, S2, vms(S2, 40))));
    expect(small.open).toHaveLength(80);
  });

  it('retries a request once per attempt: of two hubs that saw attempt 1, one records attempt 2', () => {
    const retry: PolicySlotsCommand = { kind: 'retry', policyId: 'p1', slot: S1, vmId: 'vm1', jobId: 'j1', attempt: 1, at: S2, hubInstance: 'hub-b' };
    const events = when([fired(S1, 'vm1', 'j1')], retry);
    expect(events).toEqual([{ type: SLOT_RETRIED, data: { policyId: 'p1', slot: S1, vmId: 'vm1', jobId: 'j1', attempt: 2, retriedAt: S2, hubInstance: 'hub-b' } }]);
    expect(when([fired(S1, 'vm1', 'j1'), ...events], retry)).toEqual([]);
    expect(given(fired(S1, 'vm1', 'j1'), ...events).open).toEqual([{ slot: S1, vmId: 'vm1', jobId: 'j1', requestedType: 'auto', attempt: 2, at: S2 }]);
  });
});

describe('planSlots', () => {
  const every10s = parseCron('*/10 * * * * *');
  const at = (iso: string) => new Date(iso);

  it('has nothing to do before the next slot', () => {
    expect(planSlots(every10s, 'UTC', 'once', at('2025-06-01T12:00:10Z'), at('2025-06-01T12:00:19Z'))).toBeNull();
  });

  it('fires the slot that just came', () => {
    expect(planSlots(every10s, 'UTC', 'once', at('2025-06-01T12:00:10Z'), at('2025-06-01T12:00:20.300Z'))).toEqual({ missed: null, fire: [{ slot: S2, catchUp: false }] });
  });

  it('after an outage, runs the newest slot once and records the rest missed (catchUp once)', () => {
    const plan = planSlots(parseCron('0 * * * *'), 'UTC', 'once', at('2025-06-01T08:30:00Z'), at('2025-06-01T12:45:00Z'));
    expect(plan).toEqual({
      missed: { firstSlot: '2025-06-01T09:00:00.000Z', slot: '2025-06-01T11:00:00.000Z', count: 3, reason: 'no hub was running the scheduler (catchUp: once)' },
      fire: [{ slot: '2025-06-01T12:00:00.000Z', catchUp: true }],
    });
  });

  it('after an outage, records every slot missed and runs none (catchUp skip)', () => {
    const plan = planSlots(parseCron('0 * * * *'), 'UTC', 'skip', at('2025-06-01T08:30:00Z'), at('2025-06-01T12:45:00Z'));
    expect(plan).toEqual({ missed: { firstSlot: '2025-06-01T09:00:00.000Z', slot: '2025-06-01T12:00:00.000Z', count: 4, reason: 'no hub was running the scheduler (catchUp: skip)' }, fire: [] });
  });

  it('under a fast calendar a hub that comes back fires the slot that just came and records the ones before it missed', () => {
    const plan = planSlots(every10s, 'UTC', 'skip', at('2025-06-01T12:00:00Z'), at('2025-06-01T12:10:05Z'));
    expect(plan).toEqual({ missed: { firstSlot: S1, slot: '2025-06-01T12:09:50.000Z', count: 59, reason: 'a newer slot was due when the scheduler ran' }, fire: [{ slot: '2025-06-01T12:10:00.000Z', catchUp: false }] });
  });

  it('counts a slot handled within the grace as on time, even with catchUp skip', () => {
    const plan = planSlots(every10s, 'UTC', 'skip', at('2025-06-01T12:00:10Z'), new Date(Date.parse(S2) + LATE_AFTER_MS));
    expect(plan!.fire).toEqual([{ slot: '2025-06-01T12:00:50.000Z', catchUp: false }]);
    expect(plan!.missed).toMatchObject({ count: 3, reason: 'a newer slot was due when the scheduler ran' });
  });
});
