import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { Clock } from '../clock';
import { policyAggregate } from '../policy.aggregate';
import { policyStream } from '../policy.events';
import { assertRepositoryFits } from './repository-check';
import { CreatePolicyCommand } from './create-policy.command';
import { PolicyResult } from './policy-result';

@CommandHandler(CreatePolicyCommand)
export class CreatePolicyHandler implements ICommandHandler<CreatePolicyCommand, PolicyResult> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly repositories: RepositoriesService,
    private readonly clock: Clock,
  ) {}

  async execute(command: CreatePolicyCommand): Promise<PolicyResult> {
    await assertRepositoryFits(this.repositories, command.definition);
    const policyId = randomUUID();
    const { position } = await this.aggregates.execute(policyStream(policyId), policyAggregate, { kind: 'create', policyId, definition: command.definition, at: this.clock.now().toISOString() }, command);
    return { policyId, position };
  }
}
