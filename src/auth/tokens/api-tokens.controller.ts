import { Body, Controller, Delete, ForbiddenException, Get, HttpCode, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { ApiTokenView } from '../../../projections/api-tokens/api-token.entity';
import { currentContext } from '../../eventing/request-context';
import { ProjectionsService } from '../../projection-runner/projections.service';
import { ADMIN_ACTOR } from '../admin-token';
import { IssueApiTokenDto } from './api-token.dto';
import { IssueApiTokenCommand } from './issue-api-token.command';
import { IssuedToken } from './issue-api-token.handler';
import { RevokeApiTokenCommand } from './revoke-api-token.command';

const READ_MODEL = 'api-tokens';

@ApiTags('tokens')
@ApiBearerAuth()
@Controller('api/v1/tokens')
export class ApiTokensController {
  constructor(
    private readonly commands: CommandBus,
    private readonly projections: ProjectionsService,
    private readonly dataSource: DataSource,
  ) {}

  @Post()
  async issue(@Body() body: IssueApiTokenDto) {
    this.requireAdmin();
    const issued: IssuedToken = await this.commands.execute(new IssueApiTokenCommand(body.name));
    // The new token must work on the very next request, so wait for the read model that authenticates it.
    await this.projections.waitFor(READ_MODEL, issued.position);
    return { tokenId: issued.tokenId, name: issued.name, token: issued.token };
  }

  @Get()
  async list() {
    this.requireAdmin();
    const rows = await this.dataSource.getRepository(ApiTokenView).find({ order: { issuedAt: 'ASC' } });
    return rows.map(({ tokenHash: _hash, ...rest }) => rest);
  }

  @Delete(':tokenId')
  @HttpCode(204)
  async revoke(@Param('tokenId', new ParseUUIDPipe({ version: '4' })) tokenId: string) {
    this.requireAdmin();
    const position: string | null = await this.commands.execute(new RevokeApiTokenCommand(tokenId));
    await this.projections.waitFor(READ_MODEL, position);
  }

  private requireAdmin(): void {
    if (currentContext().actor !== ADMIN_ACTOR) throw new ForbiddenException('only the admin token can manage tokens');
  }
}
