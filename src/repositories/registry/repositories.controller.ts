import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { RescanWorkflow } from '../../restore-points/rescan.workflow';
import { RestorePointVerificationWorkflow } from '../../restore-points/restore-point-verification.workflow';
import { GetRepositoryQuery } from '../queries/get-repository.query';
import { ListRepositoriesQuery } from '../queries/list-repositories.query';
import { RepositoryLifecycleWorkflow } from '../repository-lifecycle.workflow';
import { RegisterRepositoryDto, registrationOf, RepositoryIdParams } from './repositories.dto';
import { Access } from '../../http/access.guard';
import { Owned, TenantScope } from '../../http/owned';
import { currentContext } from '../../eventing/request-context';

/** Registering, removing, rescanning and verifying touch the repository's files, so they go through their workflows. */
@ApiTags('repositories')
@ApiBearerAuth()
@Controller('api/v1/repositories')
export class RepositoriesController {
  constructor(
    private readonly scope: TenantScope,
    private readonly queries: QueryBus,
    private readonly lifecycle: RepositoryLifecycleWorkflow,
    private readonly rescans: RescanWorkflow,
    private readonly verification: RestorePointVerificationWorkflow,
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

  @Access('admin')
  @Owned('global')
  @Delete(':id')
  @HttpCode(204)
  async remove(@Param() { id }: RepositoryIdParams) {
    await this.lifecycle.remove(id);
  }

  @Access('admin')
  @Owned('global')
  @Post(':id/rescan')
  rescan(@Param() { id }: RepositoryIdParams) {
    return this.rescans.rescan(id);
  }

  /** Reads back every block of every restore point in the repository (each once) against its digests; a tenant's token, of its own VMs' points only. */
  @Access('operate')
  @Owned({ params: { id: 'repository' } })
  @Post(':id/verify')
  async verify(@Param() { id }: RepositoryIdParams) {
    return this.verification.verifyRepository(id, (await this.scope.owned())?.vmIds);
  }
}
