import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { pointExportAggregate } from '../point-export.aggregate';
import { pointExportStream } from '../point-export.events';
import { OpenPointExportCommand } from './open-point-export.command';

@CommandHandler(OpenPointExportCommand)
export class OpenPointExportHandler implements ICommandHandler<OpenPointExportCommand, Appended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: OpenPointExportCommand): Promise<Appended> {
    const decision = { kind: 'open' as const, export: command.openedExport, nbdBind: command.nbdBind };
    const { position } = await this.aggregates.execute(pointExportStream(command.openedExport.exportId), pointExportAggregate, decision, command);
    return { position };
  }
}
