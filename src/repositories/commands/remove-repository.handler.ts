import { CommandHandler, ICommandHandler, QueryBus } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { CountRestorePointsQuery } from '../queries/count-restore-points.query';
import { repositoryAggregate } from '../registry/repository.aggregate';
import { repositoryStream } from '../registry/repository.events';
import { RemoveRepositoryCommand } from './remove-repository.command';

@CommandHandler(RemoveRepositoryCommand)
export class RemoveRepositoryHandler implements ICommandHandler<RemoveRepositoryCommand, Appended> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly queries: QueryBus,
  ) {}

  async execute(command: RemoveRepositoryCommand): Promise<Appended> {
    const restorePoints = await this.queries.execute(new CountRestorePointsQuery(command.repositoryId));
    const result = await this.aggregates.execute(repositoryStream(command.repositoryId), repositoryAggregate, { kind: 'remove', restorePoints }, command);
    return { position: result.position };
  }
}
