import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CommandGateway } from '../../projection-runner/command-gateway';
import { ListApiTokensQuery } from '../queries/list-api-tokens.query';
import { IssueApiTokenDto } from './api-token.dto';
import { IssueApiTokenCommand } from './commands/issue-api-token.command';
import { RevokeApiTokenCommand } from './commands/revoke-api-token.command';
import { Access } from '../../http/access.guard';
import { Owned } from '../../http/owned';
import { AdminTokenRotationWorkflow } from '../admin-token.workflow';

/** The read model that authenticates tokens: a new token must work on the very next request, a revoked one must not. */
const READ_MODEL = 'api-tokens';

@ApiTags('tokens')
@ApiBearerAuth()
@Controller('api/v1/tokens')
export class ApiTokensController {
  constructor(
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    private readonly adminToken: AdminTokenRotationWorkflow,
  ) {}

  /** The old admin token answers 401 from the moment this returns, on every hub sharing the database. */
  @Access('admin', 'only an admin token can rotate the admin token')
  @Owned('global')
  @Post('admin/rotate')
  rotateAdmin() {
    return this.adminToken.rotate();
  }

  @Access('admin', 'only an admin token can manage tokens')
  @Owned('global')
  @Post()
  issue(@Body() body: IssueApiTokenDto) {
    return this.gateway.execute(new IssueApiTokenCommand(body.name, body.role ?? 'operator', body.tenantId ?? null), READ_MODEL);
  }

  @Access('admin', 'only an admin token can manage tokens')
  @Owned('global')
  @Get()
  list() {
    return this.queries.execute(new ListApiTokensQuery());
  }

  @Access('admin', 'only an admin token can manage tokens')
  @Owned('global')
  @Delete(':tokenId')
  @HttpCode(204)
  async revoke(@Param('tokenId', new ParseUUIDPipe({ version: '4' })) tokenId: string) {
    await this.gateway.execute(new RevokeApiTokenCommand(tokenId), READ_MODEL);
  }
}
