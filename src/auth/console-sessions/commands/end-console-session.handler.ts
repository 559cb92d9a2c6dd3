import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { Appended } from '../../../eventing/command';
import { consoleSessionAggregate } from '../console-session.aggregate';
import { consoleSessionStream } from '../console-session.events';
import { EndConsoleSessionCommand } from './end-console-session.command';

@CommandHandler(EndConsoleSessionCommand)
export class EndConsoleSessionHandler implements ICommandHandler<EndConsoleSessionCommand, Appended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: EndConsoleSessionCommand): Promise<Appended> {
    const result = await this.aggregates.execute(consoleSessionStream(command.sessionId), consoleSessionAggregate, { kind: 'end', sessionId: command.sessionId }, command);
    return { position: result.position };
  }
}
