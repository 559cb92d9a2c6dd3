import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { apiTokenAggregate } from './api-token.aggregate';
import { apiTokenStream } from './api-token.events';
import { RevokeApiTokenCommand } from './revoke-api-token.command';

@CommandHandler(RevokeApiTokenCommand)
export class RevokeApiTokenHandler implements ICommandHandler<RevokeApiTokenCommand, string | null> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RevokeApiTokenCommand): Promise<string | null> {
    const result = await this.aggregates.execute(apiTokenStream(command.tokenId), apiTokenAggregate, { kind: 'revoke', tokenId: command.tokenId });
    return result.position;
  }
}
