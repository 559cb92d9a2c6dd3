import { Body, Controller, Delete, Get, Param, Post, Query, Req, Res, UseFilters } from '@nestjs/common';
import { ApiBearerAuth, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { pipeline } from 'node:stream/promises';
import { RestoreMountView } from '../../projections/restore-mounts/restore-mount.entity';
import { ProjectionsService } from '../projection-runner/projections.service';
import { ByteCounter, contentDisposition, parseRange } from './http-download';
import { ArchiveQuery, CreateRestoreMountDto, FileQuery, ListFilesQuery, ListRestoreMountsQuery, MountIdParams } from './restore-mounts.dto';
import { RestoreFilesService } from './restore-files.service';
import { LiveAccess, RESTORE_READ_MODEL, RestoreMountsService } from './restore-mounts.service';
import { VolumePathErrorFilter } from './volume-path-error.filter';

const CHUNK = 1024 * 1024;

@ApiTags('restore')
@ApiBearerAuth()
@UseFilters(VolumePathErrorFilter)
@Controller('api/v1/restore')
export class RestoreMountsController {
  constructor(
    private readonly mounts: RestoreMountsService,
    private readonly files: RestoreFilesService,
    private readonly projections: ProjectionsService,
  ) {}

  @Post('mounts')
  async mount(@Body() body: CreateRestoreMountDto) {
    const started = await this.mounts.mount(body.restorePointId, body.diskId).catch(async (error) => {
      // A mount that failed after it was requested is recorded; let the read model show it.
      await this.projections.waitForCaughtUp(RESTORE_READ_MODEL);
      throw error;
    });
    await this.projections.waitFor(RESTORE_READ_MODEL, started.position);
    return this.describe(await this.mounts.view(started.mountId));
  }

  @Get('mounts')
  async list(@Query() query: ListRestoreMountsQuery) {
    return (await this.mounts.list(query)).map((v) => this.describe(v));
  }

  @Get('mounts/:id')
  async get(@Param() { id }: MountIdParams) {
    return this.describe(await this.mounts.view(id));
  }

  @Delete('mounts/:id')
  async release(@Param() { id }: MountIdParams) {
    const position = await this.mounts.release(id, 'requested');
    await this.projections.waitFor(RESTORE_READ_MODEL, position);
    return this.describe(await this.mounts.view(id));
  }

  @Get('mounts/:id/files')
  async listFiles(@Param() { id }: MountIdParams, @Query() query: ListFilesQuery) {
    return this.files.list(id, query.volume, query.path ?? '', query.limit, query.cursor);
  }

  /** One file, whole or one byte range; the download is recorded with the bytes actually sent. */
  @Get('mounts/:id/file')
  @ApiProduces('application/octet-stream')
  async download(@Param() { id }: MountIdParams, @Query() query: FileQuery, @Req() req: Request, @Res() res: Response): Promise<void> {
    let source: NodeJS.ReadableStream & { destroy(error?: Error): void } | undefined;
    const opened = await this.files.openFile(id, query.volume, query.path, (reason) => (source ? source.destroy(reason) : res.destroy(reason)));
    const rangeHeader = typeof req.headers.range === 'string' ? req.headers.range : undefined;
    let outcome = { bytes: 0, complete: false };
    let recordedRange: string | null = null;
    try {
      const range = parseRange(rangeHeader, opened.size);
      res.setHeader('Accept-Ranges', 'bytes');
      res.setHeader('Last-Modified', opened.mtime.toUTCString());
      if (range.kind === 'unsatisfiable') {
        res.status(416).setHeader('Content-Range', `bytes */${opened.size}`);
        res.json({ statusCode: 416, error: 'Range Not Satisfiable', message: `${range.reason}; the file has ${opened.size} bytes` });
        return;
      }
      const start = range.kind === 'partial' ? range.start : 0;
      const end = range.kind === 'partial' ? range.end : opened.size - 1;
      const length = opened.size === 0 ? 0 : end - start + 1;
      res.status(range.kind === 'partial' ? 206 : 200);
      if (range.kind === 'partial') {
        res.setHeader('Content-Range', `bytes ${start}-${end}/${opened.size}`);
        recordedRange = `bytes=${start}-${end}`;
      }
      res.setHeader('Content-Type', 'application/octet-stream');
      res.setHeader('Content-Length', String(length));
      res.setHeader('Content-Disposition', contentDisposition(opened.fileName));
      res.setHeader('Cache-Control', 'no-store');
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      const counter = new ByteCounter();
      source = length === 0 ? undefined : opened.handle.createReadStream({ start, end, highWaterMark: CHUNK, autoClose: false });
      try {
        if (source) await pipeline(source, counter, res);
        else res.end();
        outcome = { bytes: counter.bytes, complete: counter.bytes === length };
      } catch {
        outcome = { bytes: counter.bytes, complete: false };
        if (!res.destroyed) res.destroy();
      }
      await this.files.recordFileDownload(id, opened.volume, query.path, recordedRange, outcome);
    } finally {
      await opened.finish();
    }
  }

  /** A directory as tar.gz or zip, streamed as the archiver writes it (no Content-Length). */
  @Get('mounts/:id/archive')
  @ApiProduces('application/gzip', 'application/zip')
  async archive(@Param() { id }: MountIdParams, @Query() query: ArchiveQuery, @Req() req: Request, @Res() res: Response): Promise<void> {
    const format = query.format ?? 'tar.gz';
    const path = query.path ?? '';
    let stream: { destroy(error?: Error): void } | undefined;
    const archive = await this.files.openArchive(id, query.volume, path, format, (reason) => stream?.destroy(reason));
    stream = archive.stream;
    try {
      res.status(200);
      res.setHeader('Content-Type', archive.contentType);
      res.setHeader('Content-Disposition', contentDisposition(archive.suggestedFileName));
      res.setHeader('Cache-Control', 'no-store');
      if (req.method === 'HEAD') {
        archive.stream.destroy();
        res.end();
        return;
      }
      const counter = new ByteCounter();
      let complete = true;
      try {
        await Promise.all([pipeline(archive.stream, counter, res), archive.done]);
      } catch {
        complete = false;
        if (!res.destroyed) res.destroy();
      }
      await this.files.recordArchiveDownload(id, archive.volume, path, format, { bytes: counter.bytes, complete });
    } finally {
      archive.finish();
    }
  }

  private describe(v: RestoreMountView) {
    const live: LiveAccess | null = v.status === 'ready' ? this.mounts.liveAccess(v.mountId) : null;
    return {
      mountId: v.mountId,
      status: v.status,
      restorePointId: v.restorePointId,
      vmId: v.vmId,
      repositoryId: v.repositoryId,
      diskId: v.diskId,
      partitionTable: v.partitionTable,
      diskSize: v.diskSize,
      volumes: v.volumes.map((vol) => ({
        id: vol.id,
        fsType: vol.fsType,
        size: vol.size,
        label: vol.label,
        status: vol.status,
        reason: vol.reason,
        start: vol.start,
        partitionType: vol.partitionType,
        partitionName: vol.partitionName,
        uuid: vol.uuid,
      })),
      error: v.error,
      releaseReason: v.releaseReason,
      releaseDetail: v.releaseDetail,
      requestedBy: v.requestedBy,
      requestedAt: v.requestedAt,
      readyAt: v.readyAt,
      endedAt: v.endedAt,
      idleTimeoutSeconds: v.idleTimeoutSeconds,
      lastAccessAt: live?.lastAccessAt ?? v.lastAccessAt,
      expiresAt: live?.expiresAt ?? v.expiresAt,
      downloads: { files: v.fileDownloads, archives: v.archiveDownloads, bytes: v.bytesDownloaded },
    };
  }
}
