import { Inject } from '@nestjs/common';
import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { HUB_CONFIG, HubConfig } from '../../config/hub-config';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { repositoryAggregate } from '../registry/repository.aggregate';
import { repositoryStream } from '../registry/repository.events';
import { RecordCapacitySampleCommand } from './record-capacity-sample.command';

@CommandHandler(RecordCapacitySampleCommand)
export class RecordCapacitySampleHandler implements ICommandHandler<RecordCapacitySampleCommand, Appended> {
  constructor(
    private readonly aggregates: AggregateRepository,
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
  ) {}

  async execute(command: RecordCapacitySampleCommand): Promise<Appended> {
    const decision = { kind: 'sample' as const, capacity: command.capacity, thresholdPercent: this.config.lowSpacePercent };
    return { position: (await this.aggregates.execute(repositoryStream(command.repositoryId), repositoryAggregate, decision, command)).position };
  }
}
