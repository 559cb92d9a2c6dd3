import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { ParsedPublicKey } from './public-key';
import { AGENT_CONNECTED, AGENT_DISCONNECTED, AGENT_REGISTERED, AgentEvent, InventoryVm, VM_INVENTORY_REPORTED } from './agent.events';

export interface AgentState {
  registered: boolean;
  agentId: string | null;
  name: string | null;
  fingerprint: string | null;
  connected: boolean;
  /** The hub process the agent's live session is with. */
  connectedVia: string | null;
  inventory: InventoryVm[];
}

export type AgentCommand =
  | { kind: 'register'; agentId: string; name: string; publicKey: string; fingerprint: string; tokenId: string }
  | { kind: 'connect'; remoteAddress: string; hubInstance: string }
  /** `via`: only the session recorded through that hub process ends (one recorded since through another stays). */
  | { kind: 'disconnect'; reason: string; via?: string }
  | { kind: 'reportInventory'; vms: InventoryVm[] };

/** The API token an agent reports with is named after it, so its events show which agent acted. */
export function agentTokenName(name: string): string {
  return `agent-${name}`;
}

/** An agent needs one well-formed public key, and neither its name nor its key may already belong to another agent. */
export function checkRegistration(name: string, key: ParsedPublicKey | null, taken: { name: boolean; key: boolean }): ParsedPublicKey {
  if (!key) throw new DomainError('invalid', 'publicKey must be one OpenSSH public key line (ssh-ed25519, ecdsa-sha2-*, ssh-rsa)');
  if (taken.name) throw new DomainError('conflict', `an agent named ${name} is already registered`);
  if (taken.key) throw new DomainError('conflict', `the key ${key.fingerprint} is already registered to another agent`);
  return key;
}

export const agentAggregate: Aggregate<AgentState, AgentCommand, AgentEvent> = {
  initialState: () => ({ registered: false, agentId: null, name: null, fingerprint: null, connected: false, connectedVia: null, inventory: [] }),

  evolve(state, event) {
    switch (event.type) {
      case AGENT_REGISTERED:
        return { ...state, registered: true, agentId: event.data.agentId, name: event.data.name, fingerprint: event.data.fingerprint };
      case AGENT_CONNECTED:
        return { ...state, connected: true, connectedVia: event.data.hubInstance };
      case AGENT_DISCONNECTED:
        return { ...state, connected: false, connectedVia: null };
      case VM_INVENTORY_REPORTED:
        return { ...state, inventory: event.data.vms };
    }
  },

  decide(command, state) {
    if (command.kind === 'register') {
      if (state.registered) throw new DomainError('conflict', `agent ${command.agentId} is already registered`);
      const { kind: _kind, ...data } = command;
      return [{ type: AGENT_REGISTERED, data }];
    }
    if (!state.registered) throw new DomainError('not_found', 'agent is not registered');
    const agentId = state.agentId!;
    switch (command.kind) {
      case 'connect':
        return [{ type: AGENT_CONNECTED, data: { agentId, remoteAddress: command.remoteAddress, hubInstance: command.hubInstance } }];
      case 'disconnect':
        return state.connected && (command.via === undefined || state.connectedVia === command.via) ? [{ type: AGENT_DISCONNECTED, data: { agentId, reason: command.reason } }] : [];
      case 'reportInventory':
        return JSON.stringify(state.inventory) === JSON.stringify(command.vms) ? [] : [{ type: VM_INVENTORY_REPORTED, data: { agentId, vms: command.vms } }];
    }
  },
};
