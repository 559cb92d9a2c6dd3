import { CommandHandler, ICommandHandler } from '@nestjs/cqrs';
import { AggregateRepository } from '../../../eventing/aggregate-repository';
import { hashToken, newToken } from '../../token-hash';
import { adminTokenAggregate } from '../admin-token.aggregate';
import { ADMIN_TOKEN_STREAM } from '../admin-token.events';
import { RotateAdminTokenCommand, RotatedAdminToken } from './rotate-admin-token.command';

@CommandHandler(RotateAdminTokenCommand)
export class RotateAdminTokenHandler implements ICommandHandler<RotateAdminTokenCommand, RotatedAdminToken> {
  constructor(private readonly aggregates: AggregateRepository) {}

  async execute(command: RotateAdminTokenCommand): Promise<RotatedAdminToken> {
    const token = newToken();
    const result = await this.aggregates.execute(ADMIN_TOKEN_STREAM, adminTokenAggregate, { kind: 'rotate', tokenHash: hashToken(token) }, command);
    return { generation: result.state.generation, token, position: result.position };
  }
}
