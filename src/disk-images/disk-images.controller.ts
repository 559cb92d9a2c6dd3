import { Body, Controller, Delete, Get, Param, Post, Query, Req, Res } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { DiskImageDownloadWorkflow } from './disk-image-download.workflow';
import { DiskImageParams, DiskImageQuery, ExportIdParams, OpenPointExportDto, PointIdParams } from './disk-images.dto';
import { PointExportWorkflow } from './point-export.workflow';
import { ListPointExportsQuery } from './queries/point-exports.query';
import { Access } from '../http/access.guard';
import { answerAbandoned } from '../http/answer-abandoned';
import { Owned } from '../http/owned';

/** Disk restore without a hypervisor: a disk of a restore point as an image, or served over NBD. */
@ApiTags('restore-points')
@ApiBearerAuth()
@Controller('api/v1')
export class DiskImagesController {
  constructor(
    private readonly queries: QueryBus,
    private readonly downloads: DiskImageDownloadWorkflow,
    private readonly exports: PointExportWorkflow,
  ) {}

  @Access('operate')
  @Owned({ params: { id: 'point' } })
  @Get('restore-points/:id/disks/:diskId/image')
  @ApiProduces('application/octet-stream')
  async image(@Param() { id, diskId }: DiskImageParams, @Query() query: DiskImageQuery, @Req() req: Request, @Res() res: Response): Promise<void> {
    await this.downloads.send(id, diskId, query.format ?? 'raw', query.force === 'true', req, res);
  }

  @Access('export')
  @Owned({ params: { id: 'point' } })
  @Post('restore-points/:id/exports')
  async openExport(@Param() { id }: PointIdParams, @Body() body: OpenPointExportDto, @Req() req: Request, @Res({ passthrough: true }) res: Response) {
    return this.exports.openExport(id, body.tls ?? true, body.diskIds, req.hostname, answerAbandoned(req, res));
  }

  @Access('read')
  @Owned({ params: { id: 'point' } })
  @Get('restore-points/:id/exports')
  async listExports(@Param() { id }: PointIdParams) {
    return this.queries.execute(new ListPointExportsQuery(id));
  }

  @Access('export')
  @Owned({ params: { exportId: 'export' } })
  @Delete('restore-point-exports/:exportId')
  async closeExport(@Param() { exportId }: ExportIdParams) {
    return this.exports.closeExport(exportId);
  }
}
