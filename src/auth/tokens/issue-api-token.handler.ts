import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { hashToken, newToken } from '../token-hash';
import { apiTokenAggregate } from './api-token.aggregate';
import { apiTokenStream } from './api-token.events';
import { IssueApiTokenCommand } from './issue-api-token.command';

export interface IssuedToken {
  tokenId: string;
  name: string;
  token: string;
  position: string | null;
}

/** The token itself is returned once and never stored; events and read models hold only its hash. */
@CommandHandler(IssueApiTokenCommand)
export class IssueApiTokenHandler implements ICommandHandler<IssueApiTokenCommand, IssuedToken> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: IssueApiTokenCommand): Promise<IssuedToken> {
    const tokenId = randomUUID();
    const token = newToken();
    const result = await this.aggregates.execute(apiTokenStream(tokenId), apiTokenAggregate, {
      kind: 'issue',
      tokenId,
      name: command.name,
      tokenHash: hashToken(token),
    });
    return { tokenId, name: command.name, token, position: result.position };
  }
}
