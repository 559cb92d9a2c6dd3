import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Access } from '../../http/access.guard';
import { Owned } from '../../http/owned';
import { GetSyncJobQuery, ListSyncJobsQuery } from '../queries/sync-jobs.query';
import { SyncWorkflow } from '../sync.workflow';
import { CreateSyncJobDto, SyncJobIdParams } from './sync-jobs.dto';

/** Jobs that pull a remote hub's restore points into a repository here. */
@ApiTags('sync')
@ApiBearerAuth()
@Controller('api/v1/sync-jobs')
export class SyncJobsController {
  constructor(
    private readonly sync: SyncWorkflow,
    private readonly queries: QueryBus,
  ) {}

  @Access('admin')
  @Owned('global')
  @Post()
  create(@Body() body: CreateSyncJobDto) {
    return this.sync.create(body);
  }

  @Access('read')
  @Owned('global')
  @Get()
  list() {
    return this.queries.execute(new ListSyncJobsQuery());
  }

  @Access('read')
  @Owned('global')
  @Get(':syncJobId')
  get(@Param() { syncJobId }: SyncJobIdParams) {
    return this.queries.execute(new GetSyncJobQuery(syncJobId));
  }

  @Access('operate')
  @Owned('global')
  @Post(':syncJobId/run')
  @HttpCode(202)
  run(@Param() { syncJobId }: SyncJobIdParams) {
    return this.sync.start(syncJobId, 'manual');
  }
}
