import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { InventoryDisk, PowerState } from '../../src/agents/agent.events';
import { AgentByFingerprintQuery } from '../../src/agents/queries/agent-by-fingerprint.query';
import { AgentRegistrationConflictsQuery } from '../../src/agents/queries/agent-registration-conflicts.query';
import { GetVmQuery, VmRecord } from '../../src/agents/queries/get-vm.query';
import { AgentSummary, ListAgentsQuery } from '../../src/agents/queries/list-agents.query';
import { ListVmOwnershipConflictsQuery, VmOwnershipConflict } from '../../src/agents/queries/list-vm-ownership-conflicts.query';
import { ListVmsQuery, VmSummary } from '../../src/agents/queries/list-vms.query';
import { DomainError } from '../../src/eventing/domain-error';
import { MatchingVm, MatchingVmsQuery } from '../../src/policies/queries/matching-vms.query';
import { selects } from '../../src/policies/retention/selection';
import { AgentView, VmOwnershipConflictView, VmView } from './agent.entity';

@QueryHandler(ListAgentsQuery)
export class ListAgentsHandler implements IQueryHandler<ListAgentsQuery, AgentSummary[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute(): Promise<AgentSummary[]> {
    const rows = await this.dataSource.getRepository(AgentView).find({ order: { registeredAt: 'ASC' } });
    return rows.map((a) => ({ agentId: a.agentId, name: a.name, fingerprint: a.fingerprint, connected: a.connected, remoteAddress: a.remoteAddress, lastSeenAt: a.lastSeenAt, registeredAt: a.registeredAt }));
  }
}

@QueryHandler(ListVmsQuery)
export class ListVmsHandler implements IQueryHandler<ListVmsQuery, VmSummary[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute(): Promise<VmSummary[]> {
    const agents = new Map((await this.dataSource.getRepository(AgentView).find()).map((a) => [a.agentId, a]));
    const vms = await this.dataSource.getRepository(VmView).find({ order: { vmId: 'ASC' } });
    return vms.map((vm) => ({ vmId: vm.vmId, name: vm.name, agentId: vm.agentId, agentConnected: agents.get(vm.agentId)?.connected ?? false, powerState: vm.powerState as PowerState | null, disks: disks(vm), disksLeftOut: vm.disksLeftOut, reportedAt: vm.reportedAt }));
  }
}

/** Only the columns a selector looks at; which VMs it picks is `selects`' to say, so the form, the scheduler, retention and the report agree. */
@QueryHandler(MatchingVmsQuery)
export class MatchingVmsHandler implements IQueryHandler<MatchingVmsQuery, MatchingVm[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ selector }: MatchingVmsQuery): Promise<MatchingVm[]> {
    const rows: { vm_id: string; name: string; agent_id: string }[] = await this.dataSource.query(`SELECT vm_id, name, agent_id FROM rm_vms ORDER BY vm_id`);
    return rows.map((r) => ({ vmId: r.vm_id, name: r.name, agentId: r.agent_id })).filter((vm) => selects(selector, vm));
  }
}

@QueryHandler(GetVmQuery)
export class GetVmHandler implements IQueryHandler<GetVmQuery, VmRecord> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ vmId }: GetVmQuery): Promise<VmRecord> {
    const vm = await this.dataSource.getRepository(VmView).findOneBy({ vmId });
    if (!vm) throw new DomainError('not_found', `no agent reports a VM ${vmId}`);
    return { vmId: vm.vmId, agentId: vm.agentId, name: vm.name, disks: disks(vm), reportedAt: vm.reportedAt };
  }
}

@QueryHandler(AgentByFingerprintQuery)
export class AgentByFingerprintHandler implements IQueryHandler<AgentByFingerprintQuery, { agentId: string } | null> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ fingerprint }: AgentByFingerprintQuery): Promise<{ agentId: string } | null> {
    const agent = await this.dataSource.getRepository(AgentView).findOneBy({ fingerprint });
    return agent ? { agentId: agent.agentId } : null;
  }
}

@QueryHandler(AgentRegistrationConflictsQuery)
export class AgentRegistrationConflictsHandler implements IQueryHandler<AgentRegistrationConflictsQuery, { name: boolean; key: boolean }> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ name, fingerprint }: AgentRegistrationConflictsQuery): Promise<{ name: boolean; key: boolean }> {
    const agents = this.dataSource.getRepository(AgentView);
    return { name: await agents.existsBy({ name }), key: await agents.existsBy({ fingerprint }) };
  }
}

@QueryHandler(ListVmOwnershipConflictsQuery)
export class ListVmOwnershipConflictsHandler implements IQueryHandler<ListVmOwnershipConflictsQuery, VmOwnershipConflict[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute(): Promise<VmOwnershipConflict[]> {
    const rows = await this.dataSource.getRepository(VmOwnershipConflictView).find({ order: { refusedAt: 'ASC', vmId: 'ASC' } });
    return rows.map((c) => ({ vmId: c.vmId, ownerAgentId: c.ownerAgentId, claimantAgentId: c.claimantAgentId, refusedAt: c.refusedAt }));
  }
}

/** The projector stores the reported disks as they came; the column type is looser than the event's. */
function disks(vm: VmView): InventoryDisk[] {
  return vm.disks as InventoryDisk[];
}
