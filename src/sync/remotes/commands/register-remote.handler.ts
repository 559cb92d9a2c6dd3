import { CommandHandler, ICommandHandler, QueryBus } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { Appended } from '../../../eventing/command';
import { RemoteNameTakenQuery } from '../../queries/remotes.query';
import { remoteAggregate } from '../remote.aggregate';
import { remoteStream } from '../remote.events';
import { RegisterRemoteCommand } from './register-remote.command';

@CommandHandler(RegisterRemoteCommand)
export class RegisterRemoteHandler implements ICommandHandler<RegisterRemoteCommand, Appended> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly queries: QueryBus,
  ) {}

  async execute(command: RegisterRemoteCommand): Promise<Appended> {
    const nameTaken = await this.queries.execute(new RemoteNameTakenQuery(command.remote.name));
    return this.aggregates.execute(remoteStream(command.remote.remoteId), remoteAggregate, { kind: 'register', remote: command.remote, nameTaken }, command);
  }
}
