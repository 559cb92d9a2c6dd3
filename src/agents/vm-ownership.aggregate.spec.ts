import { fold } from '../eventing/aggregate';
import { VmOwnershipCommand, vmOwnershipAggregate as ownership } from './vm-ownership.aggregate';
import { VmOwnershipEvent } from './vm-ownership.events';

function run(commands: VmOwnershipCommand[]): VmOwnershipEvent[] {
  const events: VmOwnershipEvent[] = [];
  for (const c of commands) events.push(...ownership.decide(c, fold(ownership, events)));
  return events;
}
const claim = (agentId: string, incumbent: string | null = null): VmOwnershipCommand => ({ kind: 'claim', vmId: 'vm1', agentId, incumbent });

describe('VM ownership rules', () => {
  it('gives the VM to the first agent that reports it; its later reports record nothing', () => {
    const events = run([claim('a'), claim('a')]);
    expect(events).toEqual([{ type: 'VmClaimed', data: { vmId: 'vm1', agentId: 'a' } }]);
    expect(fold(ownership, events).owner).toBe('a');
  });

  it('refuses a second agent, records the refusal once, and keeps the first owner', () => {
    const events = run([claim('a'), claim('b'), claim('b'), claim('a')]);
    expect(events.map((e) => e.type)).toEqual(['VmClaimed', 'VmClaimRefused']);
    expect(events[1].data).toEqual({ vmId: 'vm1', ownerAgentId: 'a', claimantAgentId: 'b' });
    expect(fold(ownership, events)).toEqual({ owner: 'a', refused: ['b'] });
  });

  it('keeps the agent the read model already shows with the VM when ownership was never recorded', () => {
    const events = run([claim('b', 'a')]);
    expect(events).toEqual([
      { type: 'VmClaimed', data: { vmId: 'vm1', agentId: 'a' } },
      { type: 'VmClaimRefused', data: { vmId: 'vm1', ownerAgentId: 'a', claimantAgentId: 'b' } },
    ]);
    expect(run([claim('a', 'a')])).toEqual([{ type: 'VmClaimed', data: { vmId: 'vm1', agentId: 'a' } }]);
  });

  it('moves only by an explicit move, which clears the new owner\'s refusal', () => {
    const events = run([claim('a'), claim('b'), { kind: 'move', vmId: 'vm1', toAgentId: 'b', reason: 'host migration' }, claim('b'), claim('a')]);
    expect(events.map((e) => e.type)).toEqual(['VmClaimed', 'VmClaimRefused', 'VmOwnershipMoved', 'VmClaimRefused']);
    expect(events[2].data).toEqual({ vmId: 'vm1', fromAgentId: 'a', toAgentId: 'b', reason: 'host migration' });
    expect(events[3].data).toEqual({ vmId: 'vm1', ownerAgentId: 'b', claimantAgentId: 'a' });
    expect(fold(ownership, events)).toEqual({ owner: 'b', refused: ['a'] });
    expect(() => run([claim('a'), { kind: 'move', vmId: 'vm1', toAgentId: 'a', reason: 'x' }])).toThrow('VM vm1 already belongs to agent a');
  });
});
