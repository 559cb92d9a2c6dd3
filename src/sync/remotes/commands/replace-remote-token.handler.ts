import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { Appended } from '../../../eventing/command';
import { remoteAggregate } from '../remote.aggregate';
import { remoteStream } from '../remote.events';
import { ReplaceRemoteTokenCommand } from './replace-remote-token.command';

@CommandHandler(ReplaceRemoteTokenCommand)
export class ReplaceRemoteTokenHandler implements ICommandHandler<ReplaceRemoteTokenCommand, Appended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  execute(command: ReplaceRemoteTokenCommand): Promise<Appended> {
    return this.aggregates.execute(remoteStream(command.remoteId), remoteAggregate, { kind: 'replaceToken', remoteId: command.remoteId, tokenSha256: command.tokenSha256 }, command);
  }
}
