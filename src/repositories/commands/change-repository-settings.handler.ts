import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { repositoryAggregate } from '../registry/repository.aggregate';
import { repositoryStream } from '../registry/repository.events';
import { ChangeRepositorySettingsCommand } from './change-repository-settings.command';

/** Only the definition changes: no file or mount of the repository is touched, so no workflow is needed. */
@CommandHandler(ChangeRepositorySettingsCommand)
export class ChangeRepositorySettingsHandler implements ICommandHandler<ChangeRepositorySettingsCommand, Appended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: ChangeRepositorySettingsCommand): Promise<Appended> {
    const { repositoryId, maxChainDepth } = command;
    const result = await this.aggregates.execute(repositoryStream(repositoryId), repositoryAggregate, { kind: 'changeSettings', repositoryId, maxChainDepth }, command);
    return { position: result.position };
  }
}
