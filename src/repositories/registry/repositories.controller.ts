import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CommandGateway } from '../../projection-runner/command-gateway';
import { ChangeRepositorySettingsCommand } from '../commands/change-repository-settings.command';
import { GetRepositoryQuery } from '../queries/get-repository.query';
import { GetRepositoryUsageQuery } from '../queries/get-repository-usage.query';
import { ListRepositoriesQuery } from '../queries/list-repositories.query';
import { ChunkSpaceWorkflow } from '../chunk-space.workflow';
import { RepositoryLifecycleWorkflow } from '../repository-lifecycle.workflow';
import { ChangeRepositorySettingsDto, RegisterRepositoryDto, registrationOf, RepositoryIdParams, RepositoryUsageQueryDto } from './repositories.dto';
import { Access } from '../../http/access.guard';
import { Owned, TenantScope } from '../../http/owned';
import { currentContext } from '../../eventing/request-context';

/**
 * Registering and removing touch the repository's files, so they go through its workflow; a change of settings touches
 * none and is a command; a chunk store's garbage collection removes files, so it goes through its workflow; rescan and
 * verify are the restore points' (RepositoryChecksController).
 */
@ApiTags('repositories')
@ApiBearerAuth()
@Controller('api/v1/repositories')
export class RepositoriesController {
  constructor(
    private readonly scope: TenantScope,
    private readonly queries: QueryBus,
    private readonly lifecycle: RepositoryLifecycleWorkflow,
    private readonly gateway: CommandGateway,
    private readonly chunkSpace: ChunkSpaceWorkflow,
  ) {}

  @Access('admin')
  @Owned('global')
  @Post()
  async register(@Body() body: RegisterRepositoryDto) {
    const { repositoryId } = await this.lifecycle.register(registrationOf(body));
    return this.queries.execute(new GetRepositoryQuery(repositoryId));
  }

  @Access('read')
  @Owned('filtered')
  @Get()
  async list() {
    return this.scope.filter(await this.queries.execute(new ListRepositoriesQuery(currentContext().tenantId)), (r) => ({ repositoryId: r.repositoryId }));
  }

  @Access('read')
  @Owned({ params: { id: 'repository' } })
  @Get(':id')
  get(@Param() { id }: RepositoryIdParams) {
    return this.queries.execute(new GetRepositoryQuery(id, currentContext().tenantId));
  }

  /** The space of its points over time, for the console's overview; a tenant's token is told its own points' bytes only. */
  @Access('read')
  @Owned({ params: { id: 'repository' } })
  @Get(':id/usage')
  usage(@Param() { id }: RepositoryIdParams, @Query() { days }: RepositoryUsageQueryDto) {
    return this.queries.execute(new GetRepositoryUsageQuery(id, days ?? 30, currentContext().tenantId));
  }

  @Access('admin')
  @Owned('global')
  @Patch(':id')
  async changeSettings(@Param() { id }: RepositoryIdParams, @Body() body: ChangeRepositorySettingsDto) {
    await this.gateway.execute(new ChangeRepositorySettingsCommand(id, body.maxChainDepth), 'repositories');
    return this.queries.execute(new GetRepositoryQuery(id));
  }

  /** Frees the chunks of a chunks repository that no point names any more (its packs are removed whole). */
  @Access('admin')
  @Owned('global')
  @Post(':id/gc')
  @HttpCode(200)
  collect(@Param() { id }: RepositoryIdParams) {
    return this.chunkSpace.collect(id);
  }

  @Access('admin')
  @Owned('global')
  @Delete(':id')
  @HttpCode(204)
  async remove(@Param() { id }: RepositoryIdParams) {
    await this.lifecycle.remove(id);
  }
}
