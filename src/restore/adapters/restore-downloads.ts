import { Inject, Injectable } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { Request, Response } from 'express';
import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HUB_INSTANCE } from '../../config/hub-instance';
import { RecordArchiveDownloadCommand } from '../commands/record-archive-download.command';
import { RecordFileDownloadCommand } from '../commands/record-file-download.command';
import { RecordRestoreMountAccessCommand } from '../commands/record-restore-mount-access.command';
import { ByteCounter, contentDisposition, parseRange } from '../http-download';
import { BrowsableVolume, LiveMounts } from '../live-mounts';
import { archiveDirectory, ArchiveFormat, DirectoryPage, listDirectory, resolveInsideVolume, VolumePathError } from '../mounting';
import { integrityHeaders, MountIntegrity } from '../mount-integrity';
import { MountStories } from '../mount-stories';
import { MountIntegrityQuery } from '../queries/mount-integrity.query';
import { notBrowsable } from '../restore-mount.aggregate';

const CHUNK = 1024 * 1024;

export interface VolumeListing extends DirectoryPage {
  mountId: string;
  volume: string;
  path: string;
}

/** A file that is not a regular file (directory, FIFO, device) cannot be downloaded: it would block or never end. */
export class NotARegularFileError extends VolumePathError {
  readonly status = 400;
  readonly code = 'NOT_A_REGULAR_FILE';
  override readonly name = 'NotARegularFileError';
}

/** The filesystem in the backup itself said no (its permissions, as the FUSE driver enforces them). */
export class PermissionDeniedPathError extends VolumePathError {
  readonly status = 403;
  readonly code = 'PERMISSION_DENIED';
  override readonly name = 'PermissionDeniedPathError';
}

function refusedByFilesystem(error: unknown, path: string): unknown {
  const code = (error as NodeJS.ErrnoException)?.code;
  return code === 'EACCES' || code === 'EPERM' ? new PermissionDeniedPathError(`the filesystem in the restore point refused access (${code})`, path) : error;
}

/**
 * Browsing and downloading inside the restore mounts this process holds, straight onto the
 * HTTP response. Every path goes through resolveInsideVolume (no escape by "..", encodings or
 * symlinks); every download is recorded with the bytes that actually left and who took them.
 * Every download carries the restore point's integrity as it is when the download starts, in
 * its response headers and in its event: a corrupt point is still served (it may be all there
 * is), but never silently.
 */
@Injectable()
export class RestoreDownloads {
  constructor(
    private readonly live: LiveMounts,
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly stories: MountStories,
    @Inject(HUB_INSTANCE) private readonly instance: string,
  ) {}

  async list(mountId: string, volumeId: string | undefined, path: string, limit: number | undefined, cursor: string | undefined): Promise<VolumeListing> {
    const { volume, root } = await this.volume(mountId, volumeId);
    const end = this.live.beginAccess(mountId);
    try {
      const page = await listDirectory(root, path, { limit, cursor });
      if (this.live.browseDue(mountId)) await this.commands.execute(new RecordRestoreMountAccessCommand(mountId, volume.id, path));
      return { mountId, volume: volume.id, path, ...page };
    } catch (error) {
      throw refusedByFilesystem(error, path);
    } finally {
      end();
    }
  }

  /** One file, whole or one byte range; the download is recorded with the bytes actually sent. */
  async sendFile(mountId: string, volumeId: string | undefined, path: string, req: Request, res: Response): Promise<void> {
    let source: (NodeJS.ReadableStream & { destroy(error?: Error): void }) | undefined;
    const { volume, root, integrity } = await this.volumeWithIntegrity(mountId, volumeId);
    const end = this.live.beginAccess(mountId, (reason) => (source ? source.destroy(reason) : res.destroy(reason)));
    let handle: FileHandle;
    let stats: { size: number; mtime: Date };
    let fileName: string;
    try {
      const real = await resolveInsideVolume(root, path);
      const notAFile = (s: { isDirectory(): boolean }) =>
        new NotARegularFileError(s.isDirectory() ? 'a directory cannot be downloaded as a file; use the archive endpoint' : 'not a regular file (a device node, FIFO or socket)', path);
      // Devices are never opened (the volume is mounted nodev anyway, which makes open fail with EACCES).
      const before = await fs.stat(real);
      if (!before.isFile()) throw notAFile(before);
      // O_NONBLOCK: should a FIFO take its place, opening it must not wait for a writer; fstat then refuses it.
      handle = await fs.open(real, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
      const opened = await handle.stat().catch(async (error) => {
        await handle.close();
        throw error;
      });
      if (!opened.isFile()) {
        await handle.close();
        throw notAFile(opened);
      }
      stats = opened;
      fileName = basename(real);
    } catch (error) {
      end();
      throw refusedByFilesystem(error, path);
    }

    const rangeHeader = typeof req.headers.range === 'string' ? req.headers.range : undefined;
    let outcome = { bytes: 0, complete: false };
    let recordedRange: string | null = null;
    try {
      const range = parseRange(rangeHeader, stats.size);
      res.set(integrityHeaders(integrity));
      res.setHeader('Accept-Ranges', 'bytes');
      res.setHeader('Last-Modified', stats.mtime.toUTCString());
      if (range.kind === 'unsatisfiable') {
        res.status(416).setHeader('Content-Range', `bytes */${stats.size}`);
        res.json({ statusCode: 416, error: 'Range Not Satisfiable', message: `${range.reason}; the file has ${stats.size} bytes` });
        return;
      }
      const start = range.kind === 'partial' ? range.start : 0;
      const last = range.kind === 'partial' ? range.end : stats.size - 1;
      const length = stats.size === 0 ? 0 : last - start + 1;
      res.status(range.kind === 'partial' ? 206 : 200);
      if (range.kind === 'partial') {
        res.setHeader('Content-Range', `bytes ${start}-${last}/${stats.size}`);
        recordedRange = `bytes=${start}-${last}`;
      }
      res.setHeader('Content-Type', 'application/octet-stream');
      res.setHeader('Content-Length', String(length));
      res.setHeader('Content-Disposition', contentDisposition(fileName));
      res.setHeader('Cache-Control', 'no-store');
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      const counter = new ByteCounter();
      source = length === 0 ? undefined : handle.createReadStream({ start, end: last, highWaterMark: CHUNK, autoClose: false });
      try {
        if (source) await pipeline(source, counter, res);
        else res.end();
        outcome = { bytes: counter.bytes, complete: counter.bytes === length };
      } catch {
        outcome = { bytes: counter.bytes, complete: false };
        if (!res.destroyed) res.destroy();
      }
      await this.commands.execute(new RecordFileDownloadCommand(mountId, volume.id, path, recordedRange, outcome.bytes, outcome.complete, integrity.integrity));
    } finally {
      await handle.close().catch(() => undefined);
      end();
    }
  }

  /** A directory as tar.gz or zip, streamed as the archiver writes it (no Content-Length). */
  async sendArchive(mountId: string, volumeId: string | undefined, path: string, format: ArchiveFormat, req: Request, res: Response): Promise<void> {
    let stream: { destroy(error?: Error): void } | undefined;
    const { volume, root, integrity } = await this.volumeWithIntegrity(mountId, volumeId);
    const end = this.live.beginAccess(mountId, (reason) => stream?.destroy(reason));
    let archive: Awaited<ReturnType<typeof archiveDirectory>>;
    try {
      archive = await archiveDirectory(root, path, format);
    } catch (error) {
      end();
      throw refusedByFilesystem(error, path);
    }
    stream = archive.stream;
    try {
      res.status(200);
      res.set(integrityHeaders(integrity));
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
      await this.commands.execute(new RecordArchiveDownloadCommand(mountId, volume.id, path, format, counter.bytes, complete, integrity.integrity));
    } finally {
      end();
    }
  }

  /** 404 for an unknown mount, 409 for one this process does not serve (failed, released, elsewhere, not yet ready). */
  private async volume(mountId: string, volumeId: string | undefined): Promise<BrowsableVolume> {
    const live = this.live.browsable(mountId);
    if (!live) {
      throw notBrowsable(await this.stories.state(mountId), mountId, this.instance, !!this.live.get(mountId)?.releasing);
    }
    return this.live.volume(live, volumeId);
  }

  private async volumeWithIntegrity(mountId: string, volumeId: string | undefined): Promise<BrowsableVolume & { integrity: MountIntegrity }> {
    const browsable = await this.volume(mountId, volumeId);
    const { restorePointId, diskId } = this.live.get(mountId)!.target;
    return { ...browsable, integrity: await this.queries.execute(new MountIntegrityQuery(restorePointId, diskId)) };
  }
}
