import { Inject } from '@nestjs/common';
import { CommandHandler, ICommandHandler, QueryBus } from '@nestjs/cqrs';
import { HUB_CONFIG, HubConfig } from '../../config/hub-config';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { ActiveRepositoriesQuery } from '../queries/active-repositories.query';
import { repositoryAggregate } from '../registry/repository.aggregate';
import { repositoryStream } from '../registry/repository.events';
import { RegisteredRepository, RegisterRepositoryCommand } from './register-repository.command';

@CommandHandler(RegisterRepositoryCommand)
export class RegisterRepositoryHandler implements ICommandHandler<RegisterRepositoryCommand, RegisteredRepository> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly queries: QueryBus,
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
  ) {}

  async execute(command: RegisterRepositoryCommand): Promise<RegisteredRepository> {
    const { definition, capacity } = command;
    const existing = await this.queries.execute(new ActiveRepositoriesQuery());
    const result = await this.aggregates.execute(
      repositoryStream(definition.repositoryId),
      repositoryAggregate,
      { kind: 'register', definition, existing, capacity, thresholdPercent: this.config.lowSpacePercent },
      command,
    );
    return { repositoryId: definition.repositoryId, position: result.position, eventIds: result.eventIds };
  }
}
