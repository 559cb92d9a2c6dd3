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

/** Registering, removing, rescanning and verifying touch the repository's files, so they go through their workflows. */
@ApiTags('repositories')
@ApiBearerAuth()
@Controller('api/v1/repositories')
export class RepositoriesController {
  constructor(
    private readonly queries: QueryBus,
    private readonly lifecycle: RepositoryLifecycleWorkflow,
    private readonly rescans: RescanWorkflow,
    private readonly verification: RestorePointVerificationWorkflow,
  ) {}

  @Access('admin')
  @Post()
  async register(@Body() body: RegisterRepositoryDto) {
    const { repositoryId } = await this.lifecycle.register(registrationOf(body));
    return this.queries.execute(new GetRepositoryQuery(repositoryId));
  }

  @Access('read')
  @Get()
  list() {
    return this.queries.execute(new ListRepositoriesQuery());
  }

  @Access('read')
  @Get(':id')
  get(@Param() { id }: RepositoryIdParams) {
    return this.queries.execute(new GetRepositoryQuery(id));
  }

  @Access('admin')
  @Delete(':id')
  @HttpCode(204)
  async remove(@Param() { id }: RepositoryIdParams) {
    await this.lifecycle.remove(id);
  }

  @Access('admin')
  @Post(':id/rescan')
  rescan(@Param() { id }: RepositoryIdParams) {
    return this.rescans.rescan(id);
  }

  /** Reads back every block of every restore point in the repository (each once) against its digests. */
  @Access('operate')
  @Post(':id/verify')
  verify(@Param() { id }: RepositoryIdParams) {
    return this.verification.verifyRepository(id);
  }
}
