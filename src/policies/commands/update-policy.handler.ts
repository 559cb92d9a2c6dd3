import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { Clock } from '../clock';
import { policyAggregate } from '../policy.aggregate';
import { policyStream } from '../policy.events';
import { PolicyResult } from './policy-result';
import { assertRepositoryFits } from './repository-check';
import { UpdatePolicyCommand } from './update-policy.command';

@CommandHandler(UpdatePolicyCommand)
export class UpdatePolicyHandler implements ICommandHandler<UpdatePolicyCommand, PolicyResult> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly repositories: RepositoriesService,
    private readonly clock: Clock,
  ) {}

  async execute(command: UpdatePolicyCommand): Promise<PolicyResult> {
    const { policyId, definition } = command;
    await assertRepositoryFits(this.repositories, definition);
    const { position } = await this.aggregates.execute(policyStream(policyId), policyAggregate, { kind: 'update', policyId, definition, at: this.clock.now().toISOString() }, command);
    return { policyId, position };
  }
}
