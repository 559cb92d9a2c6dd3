import { Injectable } from '@nestjs/common';
import { constants, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { currentContext } from '../eventing/request-context';
import { archiveDirectory, ArchiveFormat, DirectoryArchive, DirectoryPage, listDirectory, resolveInsideVolume, VolumePathError } from './mounting';
import { RestoreMountsService } from './restore-mounts.service';

export interface VolumeListing extends DirectoryPage {
  mountId: string;
  volume: string;
  path: string;
}

export interface OpenedFile {
  volume: string;
  handle: FileHandle;
  size: number;
  mtime: Date;
  fileName: string;
  /** Renews the idle timeout and ends the access; call once, after the last byte or on failure. */
  finish(): Promise<void>;
}

export interface OpenedArchive extends DirectoryArchive {
  volume: string;
  finish(): void;
}

export interface DownloadOutcome {
  bytes: number;
  complete: boolean;
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
 * Browsing and downloading inside restore mounts. Every path goes through
 * resolveInsideVolume (no escape by "..", encodings or symlinks); every
 * download is recorded with the bytes that actually left and who took them.
 */
@Injectable()
export class RestoreFilesService {
  constructor(private readonly mounts: RestoreMountsService) {}

  async list(mountId: string, volumeId: string | undefined, path: string, limit: number | undefined, cursor: string | undefined): Promise<VolumeListing> {
    const { volume, root } = await this.mounts.volume(mountId, volumeId);
    const end = this.mounts.beginAccess(mountId);
    try {
      const page = await listDirectory(root, path, { limit, cursor });
      await this.mounts.recordBrowse(mountId, volume.id, path);
      return { mountId, volume: volume.id, path, ...page };
    } catch (error) {
      throw refusedByFilesystem(error, path);
    } finally {
      end();
    }
  }

  /** Opens a regular file for download; the caller streams from the handle and then calls finish(). */
  async openFile(mountId: string, volumeId: string | undefined, path: string, onAbort: (reason: Error) => void): Promise<OpenedFile> {
    const { volume, root } = await this.mounts.volume(mountId, volumeId);
    const end = this.mounts.beginAccess(mountId, onAbort);
    try {
      const real = await resolveInsideVolume(root, path);
      const notAFile = (stats: { isDirectory(): boolean }) =>
        new NotARegularFileError(stats.isDirectory() ? 'a directory cannot be downloaded as a file; use the archive endpoint' : 'not a regular file (a device node, FIFO or socket)', path);
      // Devices are never opened (the volume is mounted nodev anyway, which makes open fail with EACCES).
      const before = await fs.stat(real);
      if (!before.isFile()) throw notAFile(before);
      // O_NONBLOCK: should a FIFO take its place, opening it must not wait for a writer; fstat then refuses it.
      const handle = await fs.open(real, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
      const stats = await handle.stat().catch(async (error) => {
        await handle.close();
        throw error;
      });
      if (!stats.isFile()) {
        await handle.close();
        throw notAFile(stats);
      }
      return {
        volume: volume.id,
        handle,
        size: stats.size,
        mtime: stats.mtime,
        fileName: basename(real),
        finish: async () => {
          await handle.close().catch(() => undefined);
          end();
        },
      };
    } catch (error) {
      end();
      throw refusedByFilesystem(error, path);
    }
  }

  async openArchive(mountId: string, volumeId: string | undefined, path: string, format: ArchiveFormat, onAbort: (reason: Error) => void): Promise<OpenedArchive> {
    const { volume, root } = await this.mounts.volume(mountId, volumeId);
    const end = this.mounts.beginAccess(mountId, onAbort);
    try {
      const archive = await archiveDirectory(root, path, format);
      return { ...archive, volume: volume.id, finish: end };
    } catch (error) {
      end();
      throw refusedByFilesystem(error, path);
    }
  }

  async recordFileDownload(mountId: string, volume: string, path: string, range: string | null, outcome: DownloadOutcome): Promise<void> {
    const actor = currentContext().actor;
    await this.mounts.record(mountId, { kind: 'recordFileDownload', volume, path, range, actor, ...outcome });
  }

  async recordArchiveDownload(mountId: string, volume: string, path: string, format: ArchiveFormat, outcome: DownloadOutcome): Promise<void> {
    const actor = currentContext().actor;
    await this.mounts.record(mountId, { kind: 'recordArchiveDownload', volume, path, format, actor, ...outcome });
  }
}
