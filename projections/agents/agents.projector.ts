import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { AGENT_CONNECTED, AGENT_DISCONNECTED, AGENT_REGISTERED, AGENT_STREAM_PREFIX, AgentRegistered, VM_INVENTORY_REPORTED, VmInventoryReported } from '../../src/agents/agent.events';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import { AgentView, VmView } from './agent.entity';

@Injectable()
export class AgentsProjector implements Projector {
  readonly name = 'agents';
  readonly filter = { streamPrefixes: [AGENT_STREAM_PREFIX] };
  readonly tables = ['rm_vms', 'rm_agents'];

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
        const vms = manager.getRepository(VmView);
        await vms.delete({ agentId });
        const reported = (event.data as VmInventoryReported['data']).vms;
        if (reported.length) await vms.upsert(reported.map((vm) => ({ vmId: vm.vmId, agentId, name: vm.name, powerState: vm.powerState ?? null, disks: vm.disks, reportedAt: event.createdAt })), ['vmId']);
        return;
      }
    }
  }
}
