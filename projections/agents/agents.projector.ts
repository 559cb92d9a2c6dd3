import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { AGENT_CONNECTED, AGENT_DISCONNECTED, AGENT_REGISTERED, AGENT_STREAM_PREFIX, AgentRegistered, VM_INVENTORY_REPORTED, VmInventoryReported } from '../../src/agents/agent.events';
import { VM_CLAIM_REFUSED, VM_OWNER_STREAM_PREFIX, VM_OWNERSHIP_MOVED, VmClaimRefused, VmOwnershipMoved } from '../../src/agents/vm-ownership.events';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import { AgentView, VmOwnershipConflictView, VmView } from './agent.entity';

@Injectable()
export class AgentsProjector implements Projector {
  readonly name = 'agents';
  readonly filter = { streamPrefixes: [AGENT_STREAM_PREFIX, VM_OWNER_STREAM_PREFIX] };
  readonly tables = ['rm_vm_ownership_conflicts', 'rm_vms', 'rm_agents'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const agents = manager.getRepository(AgentView);
    const agentId = (event.data as { agentId: string }).agentId;
    switch (event.type) {
      case AGENT_REGISTERED: {
        const d = event.data as AgentRegistered['data'];
        await agents.insert({ agentId, name: d.name, fingerprint: d.fingerprint, publicKey: d.publicKey, connected: false, remoteAddress: null, lastSeenAt: null, registeredAt: event.createdAt });
        return;
      }
      case AGENT_CONNECTED:
        await agents.update({ agentId }, { connected: true, remoteAddress: (event.data as { remoteAddress: string }).remoteAddress, lastSeenAt: event.createdAt });
        return;
      case AGENT_DISCONNECTED:
        await agents.update({ agentId }, { connected: false, lastSeenAt: event.createdAt });
        return;
      case VM_INVENTORY_REPORTED: {
        await manager.getRepository(VmView).delete({ agentId });
        const reported = (event.data as VmInventoryReported['data']).vms;
        // A row changes agent only by VmOwnershipMoved: a report of another agent's VM (recorded before
        // ownership was decided on, in an older history) leaves the owner's row as it is.
        if (reported.length)
          await manager.query(
            `INSERT INTO rm_vms (vm_id, agent_id, name, power_state, disks, disks_left_out, reported_at)
             SELECT r.vm_id, $1::uuid, r.name, r.power_state, r.disks, r.disks_left_out, $2 FROM jsonb_to_recordset($3::jsonb) AS r(vm_id text, name text, power_state text, disks jsonb, disks_left_out jsonb)
             ON CONFLICT (vm_id) DO UPDATE SET name = EXCLUDED.name, power_state = EXCLUDED.power_state, disks = EXCLUDED.disks, disks_left_out = EXCLUDED.disks_left_out, reported_at = EXCLUDED.reported_at
             WHERE rm_vms.agent_id = EXCLUDED.agent_id`,
            [agentId, event.createdAt, JSON.stringify(reported.map((vm) => ({ vm_id: vm.vmId, name: vm.name, power_state: vm.powerState ?? null, disks: vm.disks, disks_left_out: vm.disksLeftOut ?? [] })))],
          );
        return;
      }
      case VM_CLAIM_REFUSED: {
        const d = event.data as VmClaimRefused['data'];
        await manager.getRepository(VmOwnershipConflictView).upsert({ vmId: d.vmId, claimantAgentId: d.claimantAgentId, ownerAgentId: d.ownerAgentId, refusedAt: event.createdAt }, ['vmId', 'claimantAgentId']);
        return;
      }
      case VM_OWNERSHIP_MOVED: {
        const d = event.data as VmOwnershipMoved['data'];
        await manager.getRepository(VmView).update({ vmId: d.vmId }, { agentId: d.toAgentId });
        const conflicts = manager.getRepository(VmOwnershipConflictView);
        await conflicts.delete({ vmId: d.vmId, claimantAgentId: d.toAgentId });
        await conflicts.update({ vmId: d.vmId }, { ownerAgentId: d.toAgentId });
        return;
      }
    }
  }
}
