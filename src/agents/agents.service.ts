import { Injectable } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { AgentView, VmView } from '../../projections/agents/agent.entity';
import { IssueApiTokenCommand } from '../auth/tokens/issue-api-token.command';
import { IssuedToken } from '../auth/tokens/issue-api-token.handler';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { DomainError } from '../eventing/domain-error';
import { agentAggregate, AgentState } from './agent.aggregate';
import { agentStream, InventoryVm } from './agent.events';
import { parsePublicKey } from './public-key';

export interface RegisteredAgent {
  agentId: string;
  name: string;
  fingerprint: string;
  token: string;
  position: string | null;
}

@Injectable()
export class AgentsService {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly commands: CommandBus,
    private readonly dataSource: DataSource,
  ) {}

  /** An agent gets an id, its key on record, and an API token named after it for reporting back. */
  async register(name: string, publicKey: string): Promise<RegisteredAgent> {
    const key = parsePublicKey(publicKey);
    if (!key) throw new DomainError('invalid', 'publicKey must be one OpenSSH public key line (ssh-ed25519, ecdsa-sha2-*, ssh-rsa)');
    const agents = this.dataSource.getRepository(AgentView);
    if (await agents.findOneBy({ name })) throw new DomainError('conflict', `an agent named ${name} is already registered`);
    if (await agents.findOneBy({ fingerprint: key.fingerprint })) throw new DomainError('conflict', `the key ${key.fingerprint} is already registered to another agent`);
    const agentId = randomUUID();
    const issued: IssuedToken = await this.commands.execute(new IssueApiTokenCommand(agentTokenName(name)));
    const result = await this.aggregates.execute(agentStream(agentId), agentAggregate, { kind: 'register', agentId, name, publicKey: key.normalized, fingerprint: key.fingerprint, tokenId: issued.tokenId });
    return { agentId, name, fingerprint: key.fingerprint, token: issued.token, position: result.position };
  }

  async state(agentId: string): Promise<AgentState> {
    const { state } = await this.aggregates.load(agentStream(agentId), agentAggregate);
    if (!state.registered) throw new DomainError('not_found', `agent ${agentId} is not registered`);
    return state;
  }

  async byFingerprint(fingerprint: string): Promise<AgentView | null> {
    return this.dataSource.getRepository(AgentView).findOneBy({ fingerprint });
  }

  async connected(agentId: string, remoteAddress: string, hubInstance: string): Promise<void> {
    await this.aggregates.execute(agentStream(agentId), agentAggregate, { kind: 'connect', remoteAddress, hubInstance });
  }

  /** Sessions with a previous run of this hub ended with it, whatever the events last said. */
  async disconnectStale(hubInstance: string): Promise<void> {
    for (const agent of await this.list()) {
      if (!agent.connected) continue;
      const state = await this.state(agent.agentId);
      if (state.connectedVia === hubInstance) await this.disconnected(agent.agentId, 'the hub restarted');
    }
  }

  async disconnected(agentId: string, reason: string): Promise<void> {
    await this.aggregates.execute(agentStream(agentId), agentAggregate, { kind: 'disconnect', reason });
  }

  async reportInventory(agentId: string, vms: InventoryVm[]): Promise<string | null> {
    return (await this.aggregates.execute(agentStream(agentId), agentAggregate, { kind: 'reportInventory', vms })).position;
  }

  async list(): Promise<AgentView[]> {
    return this.dataSource.getRepository(AgentView).find({ order: { registeredAt: 'ASC' } });
  }

  async vms(): Promise<VmView[]> {
    return this.dataSource.getRepository(VmView).find({ order: { vmId: 'ASC' } });
  }

  async vm(vmId: string): Promise<VmView> {
    const vm = await this.dataSource.getRepository(VmView).findOneBy({ vmId });
    if (!vm) throw new DomainError('not_found', `no agent reports a VM ${vmId}`);
    return vm;
  }
}

export function agentTokenName(name: string): string {
  return `agent-${name}`;
}
