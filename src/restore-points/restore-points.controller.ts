import { Controller, Delete, Get, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { RestorePointView } from '../../projections/restore-points/restore-point.entity';
import { ProjectionsService } from '../projection-runner/projections.service';
import { ChainQuery, RestorePointIdParams, VmIdParams } from './restore-points.dto';
import { RestorePointsService } from './restore-points.service';

const READ_MODEL = 'restore-points';

@ApiTags('restore-points')
@ApiBearerAuth()
@Controller('api/v1')
export class RestorePointsController {
  constructor(
    private readonly points: RestorePointsService,
    private readonly projections: ProjectionsService,
  ) {}

  @Get('restore-points/:id')
  async get(@Param() { id }: RestorePointIdParams) {
    return describe(await this.points.view(id));
  }

  @Delete('restore-points/:id')
  async delete(@Param() { id }: RestorePointIdParams) {
    const position = await this.points.delete(id);
    await this.projections.waitFor(READ_MODEL, position);
    return { restorePointId: id, deleted: true };
  }

  @Post('restore-points/:id/verify')
  async verify(@Param() { id }: RestorePointIdParams) {
    const position = await this.points.verify(id);
    await this.projections.waitFor(READ_MODEL, position);
    return describe(await this.points.view(id));
  }

  @Get('vms/:vmId/restore-points')
  async list(@Param() { vmId }: VmIdParams, @Query() { repositoryId }: ChainQuery) {
    return (await this.points.list(vmId, repositoryId)).map(describe);
  }
}

function describe(v: RestorePointView) {
  return {
    restorePointId: v.restorePointId,
    vmId: v.vmId,
    repositoryId: v.repositoryId,
    backupId: v.backupId,
    type: v.type,
    parentId: v.parentId,
    createdAt: v.createdAt,
    status: v.status,
    disks: v.disks.map((d) => ({ diskId: d.diskId, file: d.file, parentFile: d.parentFile, virtualSize: d.virtualSize, fileBytes: d.fileBytes, changeRef: d.changeRef })),
    verification: v.verifiedAt ? { ok: v.verifyOk, problems: v.verifyProblems ?? [], warnings: v.verifyWarnings ?? [], at: v.verifiedAt } : null,
  };
}
