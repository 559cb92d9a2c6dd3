import { Body, Controller, Get, Param, Post, Put } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Access } from '../../http/access.guard';
import { Owned } from '../../http/owned';
import { GetRemoteQuery, ListRemotesQuery } from '../queries/remotes.query';
import { RemoteRegistry } from './remote-registry';
import { RegisterRemoteDto, RemoteIdParams, RemoteTokenDto } from './remotes.dto';

/** Other hubs this hub pulls restore points from. */
@ApiTags('sync')
@ApiBearerAuth()
@Controller('api/v1/remotes')
export class RemotesController {
  constructor(
    private readonly registry: RemoteRegistry,
    private readonly queries: QueryBus,
  ) {}

  @Access('admin')
  @Owned('global')
  @Post()
  register(@Body() body: RegisterRemoteDto) {
    return this.registry.register(body);
  }

  /** Another token of the same remote hub: after the first was revoked there, or lost with an older hub's data dir. */
  @Access('admin')
  @Owned('global')
  @Put(':remoteId/token')
  replaceToken(@Param() { remoteId }: RemoteIdParams, @Body() body: RemoteTokenDto) {
    return this.registry.replaceToken(remoteId, body.token);
  }

  @Access('read')
  @Owned('global')
  @Get()
  list() {
    return this.queries.execute(new ListRemotesQuery());
  }

  @Access('read')
  @Owned('global')
  @Get(':remoteId')
  get(@Param() { remoteId }: RemoteIdParams) {
    return this.queries.execute(new GetRemoteQuery(remoteId));
  }
}
