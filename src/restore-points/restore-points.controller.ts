import { Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { GetRestorePointQuery } from './queries/get-restore-point.query';
import { ListRestorePointsQuery } from './queries/list-restore-points.query';
import { RecycleBinQuery } from './queries/recycle-bin.query';
import { RestorePointDeletionWorkflow } from './restore-point-deletion.workflow';
import { RestorePointVerificationWorkflow } from './restore-point-verification.workflow';
import { ChainQuery, RestorePointIdParams, restorePointResponse, VmIdParams } from './restore-points.dto';
import { Access } from '../http/access.guard';
import { Owned, TenantScope } from '../http/owned';

/** Deleting and verifying work on the chain's files, so they go through their workflows. */
@ApiTags('restore-points')
@ApiBearerAuth()
@Controller('api/v1')
export class RestorePointsController {
  constructor(
    private readonly scope: TenantScope,
    private readonly queries: QueryBus,
    private readonly deletion: RestorePointDeletionWorkflow,
    private readonly verification: RestorePointVerificationWorkflow,
  ) {}

  @Access('read')
  @Owned({ params: { id: 'point' } })
  @Get('restore-points/:id')
  async get(@Param() { id }: RestorePointIdParams) {
    return restorePointResponse(await this.queries.execute(new GetRestorePointQuery(id)));
  }

  @Access('operate')
  @Owned({ params: { id: 'point' } })
  @Delete('restore-points/:id')
  async delete(@Param() { id }: RestorePointIdParams) {
    const { purgeAfter } = await this.deletion.delete(id);
    return { restorePointId: id, deleted: true, ...(purgeAfter ? { recycled: true, purgeAfter } : {}) };
  }

  /** The grace is for a stolen token; an admin who needs the space now removes the point's files at once. */
  @Access('admin')
  @Owned('global')
  @Post('restore-points/:id/purge')
  @HttpCode(200)
  async purge(@Param() { id }: RestorePointIdParams) {
    await this.deletion.delete(id, { purge: true });
    return { restorePointId: id, purged: true };
  }

  @Access('admin')
  @Owned('global')
  @Post('restore-points/:id/undelete')
  @HttpCode(200)
  async undelete(@Param() { id }: RestorePointIdParams) {
    await this.deletion.undelete(id);
    return restorePointResponse(await this.queries.execute(new GetRestorePointQuery(id)));
  }

  @Access('read')
  @Owned('filtered')
  @Get('recycle-bin')
  async recycleBin() {
    return (await this.scope.filter(await this.queries.execute(new RecycleBinQuery()), (p) => ({ vmId: p.vmId }))).map(restorePointResponse);
  }

  @Access('operate')
  @Owned({ params: { id: 'point' } })
  @Post('restore-points/:id/verify')
  async verify(@Param() { id }: RestorePointIdParams) {
    const content = await this.verification.verify(id);
    return { ...restorePointResponse(await this.queries.execute(new GetRestorePointQuery(id))), content };
  }

  @Access('read')
  @Owned({ params: { vmId: 'vm' } })
  @Get('vms/:vmId/restore-points')
  async list(@Param() { vmId }: VmIdParams, @Query() { repositoryId }: ChainQuery) {
    return (await this.queries.execute(new ListRestorePointsQuery(vmId, repositoryId))).map(restorePointResponse);
  }
}
