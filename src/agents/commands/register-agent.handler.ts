import { CommandHandler, ICommandHandler, QueryBus } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { agentAggregate, checkRegistration } from '../agent.aggregate';
import { agentStream } from '../agent.events';
import { parsePublicKey } from '../public-key';
import { AgentRegistrationConflictsQuery } from '../queries/agent-registration-conflicts.query';
import { RegisterAgentCommand, RegisteredAgent } from './register-agent.command';

@CommandHandler(RegisterAgentCommand)
export class RegisterAgentHandler implements ICommandHandler<RegisterAgentCommand, RegisteredAgent> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly queries: QueryBus,
  ) {}

  async execute(command: RegisterAgentCommand): Promise<RegisteredAgent> {
    const parsed = parsePublicKey(command.publicKey);
    const taken = parsed ? await this.queries.execute(new AgentRegistrationConflictsQuery(command.name, parsed.fingerprint)) : { name: false, key: false };
    const key = checkRegistration(command.name, parsed, taken);
    const agentId = randomUUID();
    const decision = { kind: 'register', agentId, name: command.name, publicKey: key.normalized, fingerprint: key.fingerprint, tokenId: command.tokenId } as const;
    const result = await this.aggregates.execute(agentStream(agentId), agentAggregate, decision, command);
    return { agentId, name: command.name, fingerprint: key.fingerprint, position: result.position };
  }
}
