import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { VM_CLAIM_REFUSED, VM_CLAIMED, VM_OWNERSHIP_MOVED, VmOwnershipEvent } from './vm-ownership.events';

export interface VmOwnershipState {
  owner: string | null;
  /** Agents whose claim was refused and recorded; a refusal is recorded once, not at every report. */
  refused: string[];
}

export type VmOwnershipCommand =
  /**
   * `incumbent`: the agent the read model already shows with this VM when its ownership stream is still empty
   * (a hub whose VMs were reported before ownership was recorded); it owns the VM, not the claimant.
   */
  | { kind: 'claim'; vmId: string; agentId: string; incumbent: string | null }
  | { kind: 'move'; vmId: string; toAgentId: string; reason: string };

export const vmOwnershipAggregate: Aggregate<VmOwnershipState, VmOwnershipCommand, VmOwnershipEvent> = {
  initialState: () => ({ owner: null, refused: [] }),

  evolve(state, event) {
    switch (event.type) {
      case VM_CLAIMED:
        return { owner: event.data.agentId, refused: [] };
      case VM_CLAIM_REFUSED:
        return { ...state, refused: [...state.refused, event.data.claimantAgentId] };
      case VM_OWNERSHIP_MOVED:
        return { owner: event.data.toAgentId, refused: state.refused.filter((a) => a !== event.data.toAgentId) };
    }
  },

  decide(command, state) {
    const { vmId } = command;
    if (command.kind === 'move') {
      if (state.owner === command.toAgentId) throw new DomainError('conflict', `VM ${vmId} already belongs to agent ${command.toAgentId}`);
      return [{ type: VM_OWNERSHIP_MOVED, data: { vmId, fromAgentId: state.owner, toAgentId: command.toAgentId, reason: command.reason } }];
    }
    const { agentId, incumbent } = command;
    if (state.owner === null) {
      if (incumbent === null || incumbent === agentId) return [{ type: VM_CLAIMED, data: { vmId, agentId } }];
      return [
        { type: VM_CLAIMED, data: { vmId, agentId: incumbent } },
        { type: VM_CLAIM_REFUSED, data: { vmId, ownerAgentId: incumbent, claimantAgentId: agentId } },
      ];
    }
    if (state.owner === agentId || state.refused.includes(agentId)) return [];
    return [{ type: VM_CLAIM_REFUSED, data: { vmId, ownerAgentId: state.owner, claimantAgentId: agentId } }];
  },
};

