import { Body, Controller, Delete, Get, Param, Post, Query, Req, Res, UseFilters } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { CommandGateway } from '../projection-runner/command-gateway';
import { RestoreDownloads } from './adapters/restore-downloads';
import { RequestRestoreMountCommand } from './commands/request-restore-mount.command';
import { GetRestoreMountQuery } from './queries/get-restore-mount.query';
import { ListRestoreMountsQuery } from './queries/list-restore-mounts.query';
import { SettledRestoreMountQuery } from './queries/settled-restore-mount.query';
import { ArchiveQuery, CreateRestoreMountDto, FileQuery, ListFilesQuery, ListRestoreMountsFilter, MountIdParams } from './restore-mounts.dto';
import { RESTORE_READ_MODEL, RestoreMountWorkflow } from './restore-mount.workflow';
import { VolumePathErrorFilter } from './volume-path-error.filter';
import { Access } from '../http/access.guard';
import { Owned, TenantScope } from '../http/owned';

@ApiTags('restore')
@ApiBearerAuth()
@UseFilters(VolumePathErrorFilter)
@Controller('api/v1/restore')
export class RestoreMountsController {
  constructor(
    private readonly scope: TenantScope,
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    private readonly downloads: RestoreDownloads,
    private readonly mounts: RestoreMountWorkflow,
  ) {}

  /** Answers once every volume was tried: ready, or 409 with why the mount failed. */
  @Access('operate')
  @Owned({ body: { restorePointId: 'point' } })
  @Post('mounts')
  async mount(@Body() body: CreateRestoreMountDto) {
    const { mountId } = await this.gateway.execute(new RequestRestoreMountCommand(body.restorePointId, body.diskId), RESTORE_READ_MODEL);
    return this.queries.execute(new SettledRestoreMountQuery(mountId, true));
  }

  @Access('read')
  @Owned('filtered')
  @Get('mounts')
  async list(@Query() query: ListRestoreMountsFilter) {
    return this.scope.filter(await this.queries.execute(new ListRestoreMountsQuery(query)), (m) => ({ vmId: m.vmId }));
  }

  @Access('read')
  @Owned({ params: { id: 'mount' } })
  @Get('mounts/:id')
  async get(@Param() { id }: MountIdParams) {
    return this.queries.execute(new GetRestoreMountQuery(id));
  }

  /** Answers once the mount is down; downloads under way are cut off. Releasing again changes nothing. */
  @Access('operate')
  @Owned({ params: { id: 'mount' } })
  @Delete('mounts/:id')
  async release(@Param() { id }: MountIdParams) {
    await this.mounts.releaseOnRequest(id);
    return this.queries.execute(new SettledRestoreMountQuery(id));
  }

  @Access('read')
  @Owned({ params: { id: 'mount' } })
  @Get('mounts/:id/files')
  async listFiles(@Param() { id }: MountIdParams, @Query() query: ListFilesQuery) {
    return this.downloads.list(id, query.volume, query.path ?? '', query.limit, query.cursor);
  }

  @Access('operate')
  @Owned({ params: { id: 'mount' } })
  @Get('mounts/:id/file')
  @ApiProduces('application/octet-stream')
  async download(@Param() { id }: MountIdParams, @Query() query: FileQuery, @Req() req: Request, @Res() res: Response): Promise<void> {
    await this.downloads.sendFile(id, query.volume, query.path, req, res);
  }

  @Access('operate')
  @Owned({ params: { id: 'mount' } })
  @Get('mounts/:id/archive')
  @ApiProduces('application/gzip', 'application/zip')
  async archive(@Param() { id }: MountIdParams, @Query() query: ArchiveQuery, @Req() req: Request, @Res() res: Response): Promise<void> {
    await this.downloads.sendArchive(id, query.volume, query.path ?? '', query.format ?? 'tar.gz', req, res);
  }
}
