import { Body, Controller, Delete, Get, HttpCode, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CommandGateway } from '../../projection-runner/command-gateway';
import { AdminOnly } from '../admin-only.guard';
import { ListApiTokensQuery } from '../queries/list-api-tokens.query';
import { IssueApiTokenDto } from './api-token.dto';
import { IssueApiTokenCommand } from './commands/issue-api-token.command';
import { RevokeApiTokenCommand } from './commands/revoke-api-token.command';

/** The read model that authenticates tokens: a new token must work on the very next request, a revoked one must not. */
const READ_MODEL = 'api-tokens';

@ApiTags('tokens')
@ApiBearerAuth()
@Controller('api/v1/tokens')
@AdminOnly('only the admin token can manage tokens')
export class ApiTokensController {
  constructor(
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
  ) {}

  @Post()
  issue(@Body() body: IssueApiTokenDto) {
    return this.gateway.execute(new IssueApiTokenCommand(body.name), READ_MODEL);
  }

  @Get()
  list() {
    return this.queries.execute(new ListApiTokensQuery());
  }

  @Delete(':tokenId')
  @HttpCode(204)
  async revoke(@Param('tokenId', new ParseUUIDPipe({ version: '4' })) tokenId: string) {
    await this.gateway.execute(new RevokeApiTokenCommand(tokenId), READ_MODEL);
  }
}
