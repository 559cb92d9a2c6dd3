import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { pointExportAggregate } from '../point-export.aggregate';
import { pointExportStream } from '../point-export.events';
import { ClosePointExportCommand } from './close-point-export.command';

@CommandHandler(ClosePointExportCommand)
export class ClosePointExportHandler implements ICommandHandler<ClosePointExportCommand, Appended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: ClosePointExportCommand): Promise<Appended> {
    const decision = { kind: 'close' as const, reason: command.reason, detail: command.detail };
    const { position } = await this.aggregates.execute(pointExportStream(command.exportId), pointExportAggregate, decision, command);
    return { position };
  }
}
