import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { randomUUID } from 'node:crypto';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { hashToken, newToken } from '../../token-hash';
import { apiTokenAggregate } from '../api-token.aggregate';
import { apiTokenStream } from '../api-token.events';
import { IssueApiTokenCommand, IssuedToken } from './issue-api-token.command';

@CommandHandler(IssueApiTokenCommand)
export class IssueApiTokenHandler implements ICommandHandler<IssueApiTokenCommand, IssuedToken> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: IssueApiTokenCommand): Promise<IssuedToken> {
    const tokenId = randomUUID();
    const token = newToken();
    const decision = { kind: 'issue', tokenId, name: command.name, tokenHash: hashToken(token), role: command.role, tenantId: command.tenantId } as const;
    const result = await this.aggregates.execute(apiTokenStream(tokenId), apiTokenAggregate, decision, command);
    return { tokenId, name: command.name, role: command.role, tenantId: command.tenantId, token, position: result.position };
  }
}
