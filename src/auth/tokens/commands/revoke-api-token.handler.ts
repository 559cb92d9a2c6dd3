import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { Appended } from '../../../eventing/command';
import { apiTokenAggregate } from '../api-token.aggregate';
import { apiTokenStream } from '../api-token.events';
import { RevokeApiTokenCommand } from './revoke-api-token.command';

@CommandHandler(RevokeApiTokenCommand)
export class RevokeApiTokenHandler implements ICommandHandler<RevokeApiTokenCommand, Appended> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RevokeApiTokenCommand): Promise<Appended> {
    const result = await this.aggregates.execute(apiTokenStream(command.tokenId), apiTokenAggregate, { kind: 'revoke', tokenId: command.tokenId }, command);
    return { position: result.position };
  }
}
