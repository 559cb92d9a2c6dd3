import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Clock } from '../clock';
import { policyAggregate } from '../policy.aggregate';
import { policyStream } from '../policy.events';
import { DeletePolicyCommand } from './delete-policy.command';
import { PolicyResult } from './policy-result';

@CommandHandler(DeletePolicyCommand)
export class DeletePolicyHandler implements ICommandHandler<DeletePolicyCommand, PolicyResult> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly clock: Clock,
  ) {}

  async execute(command: DeletePolicyCommand): Promise<PolicyResult> {
    const { policyId } = command;
    const { position } = await this.aggregates.execute(policyStream(policyId), policyAggregate, { kind: 'delete', policyId, at: this.clock.now().toISOString() }, command);
    return { policyId, position };
  }
}
