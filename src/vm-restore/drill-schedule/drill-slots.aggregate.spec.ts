import { fold } from '../../eventing/aggregate';
import { drillSlotsAggregate, DrillSlotsCommand } from './drill-slots.aggregate';
import { DRILL_SLOT_FIRED, DRILL_SLOT_SKIPPED, DRILL_SLOTS_MISSED, DrillSlotEvent } from './drill-slots.events';

const given = (...events: DrillSlotEvent[]) => fold(drillSlotsAggregate, events);
const fire = (over: Partial<Extract<DrillSlotsCommand, { kind: 'fire' }>> = {}): DrillSlotsCommand => ({
  kind: 'fire',
  policyId: 'p1',
  agentId: 'a1',
  basedOn: null,
  missed: null,
  fire: { slot: 't1', catchUp: false },
  drills: [
    { vmId: 'vm1', restorePointId: 'rp1', restoreId: 'r1' },
    { vmId: 'vm2', skip: 'it has no restore point in repository repo-1' },
  ],
  at: 'now',
  hubInstance: 'hub-a',
  ...over,
});
const fired: DrillSlotEvent = { type: DRILL_SLOT_FIRED, data: { policyId: 'p1', agentId: 'a1', slot: 't1', vmId: 'vm1', restorePointId: 'rp1', restoreId: 'r1', catchUp: false, firedAt: 'now', hubInstance: 'hub-a' } };

describe('drill slots decider', () => {
  it('takes a due slot: a drill of each VM with a point, a skip with the reason for each without', () => {
    const events = drillSlotsAggregate.decide(fire(), given());
    expect(events).toEqual([fired, { type: DRILL_SLOT_SKIPPED, data: { policyId: 'p1', agentId: 'a1', slot: 't1', vmId: 'vm2', restoreId: null, reason: 'it has no restore point in repository repo-1' } }]);
    expect(fold(drillSlotsAggregate, events).lastSlot).toBe('t1');
  });

  it('records nothing when another hub took the slot first (the state moved past what the plan was based on)', () => {
    expect(drillSlotsAggregate.decide(fire(), given(fired))).toEqual([]);
    expect(drillSlotsAggregate.decide(fire({ basedOn: 't1', fire: { slot: 't2', catchUp: false } }), given(fired))).toHaveLength(2);
  });

  it('records missed slots before the late one it drills, and moves past them even when nothing fires', () => {
    const missed = { firstSlot: 't0', slot: 't0.5', count: 2, reason: 'no hub running the scheduler held a session of agent a1' };
    const events = drillSlotsAggregate.decide(fire({ missed, fire: { slot: 't1', catchUp: true }, drills: [{ vmId: 'vm1', restorePointId: 'rp1', restoreId: 'r1' }] }), given());
    expect(events.map((e) => e.type)).toEqual([DRILL_SLOTS_MISSED, DRILL_SLOT_FIRED]);
    expect(events[1].data).toMatchObject({ catchUp: true });
    const onlyMissed = drillSlotsAggregate.decide(fire({ missed, fire: null }), given());
    expect(onlyMissed).toEqual([{ type: DRILL_SLOTS_MISSED, data: { policyId: 'p1', agentId: 'a1', ...missed } }]);
    expect(fold(drillSlotsAggregate, onlyMissed).lastSlot).toBe('t0.5');
  });

  it('records a fired drill whose request was refused, with the reason', () => {
    expect(drillSlotsAggregate.decide({ kind: 'skip', policyId: 'p1', agentId: 'a1', slot: 't1', vmId: 'vm1', restoreId: 'r1', reason: 'restore point rp1 is corrupt' }, given(fired))).toEqual([
      { type: DRILL_SLOT_SKIPPED, data: { policyId: 'p1', agentId: 'a1', slot: 't1', vmId: 'vm1', restoreId: 'r1', reason: 'restore point rp1 is corrupt' } },
    ]);
  });
});
