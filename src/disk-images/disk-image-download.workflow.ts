import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { Request, Response } from 'express';
import { promises as fs, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { finished, pipeline } from 'node:stream/promises';
import { HUB_CONFIG, HubConfig } from '../config/hub-config';
import { DomainError } from '../eventing/domain-error';
import { RepositoriesService } from '../repositories/registry/repositories.service';
import { ByteCounter, contentDisposition, parseRange } from '../restore/http-download';
import { integrityHeaders, mountIntegrity } from '../restore/mount-integrity';
import { integrityOf } from '../restore-points/chain.aggregate';
import { ChainStates } from '../restore-points/chain-states';
import { FilesInUse, HeldFiles } from '../restore-points/files-in-use';
import { GetRestorePointQuery } from '../restore-points/queries/get-restore-point.query';
import { Framing, openPointReader, PointDisk, PointReader, ReadFigures, sendImage } from './adapters/point-reader';
import { convertToQcow2, measureQcow2, spaceRefusal } from './adapters/qcow2-image';
import { isChunkPointFile } from '../repositories/chunks/chunk-points';
import { clearWorkArea, makeWorkDir, removeWorkDir } from '../process/work-area';
import { RecordDiskImageDownloadCommand } from './commands/record-disk-image-download.command';
import { DiskImageDownload, DiskImageFormat } from './disk-image.events';
import { corruptionRefusal, readTarget } from './download-target';
import { DISK_SIZE_HEADER, EXTENTS_MEDIA_TYPE, extentsType, ZSTD_CODEC } from './image-extents';

const FILE_CHUNK = 1024 * 1024;

/** `<dataDir>/disk-images`: a work dir per download (its qemu-nbd's socket, pid file and log, or the qcow2 being built). */
export const workAreaOf = (dataDir: string) => join(dataDir, 'disk-images');

type Outcome = Pick<DiskImageDownload, 'bytes' | 'size' | 'range' | 'completed' | 'error'>;

/**
 * A disk of a restore point as one image, straight onto the HTTP response: raw read through a
 * read-only qemu-nbd of the point's top file (holes are sent as zeroes without being read), or a
 * self-contained qcow2 built by qemu-img convert in the work area. While it runs the files of the
 * point's lineage are held: a delete or merge of the point, or of one it reads through, is
 * refused. Every download that sent headers is recorded with the bytes that left.
 */
@Injectable()
export class DiskImageDownloadWorkflow implements OnApplicationBootstrap {
  private readonly logger = new Logger('disk-images');
  private readonly area: string;
  /** Real paths of the files downloads are reading. */
  private readonly held: HeldFiles;

  constructor(
    @Inject(HUB_CONFIG) config: HubConfig,
    private readonly commands: CommandBus,
    private readonly queries: QueryBus,
    private readonly chains: ChainStates,
    private readonly repositories: RepositoriesService,
    filesInUse: FilesInUse,
  ) {
    this.area = workAreaOf(config.dataDir);
    this.held = new HeldFiles(filesInUse, 'a disk image download is reading it');
  }

  async onApplicationBootstrap(): Promise<void> {
    const left = await clearWorkArea(this.area);
    if (left.entries.length || left.processes.length) this.logger.warn(`removed what interrupted downloads left in ${this.area}: ${left.entries.length} work dir(s), qemu-nbd pid(s) ${left.processes.join(', ') || 'none'}`);
  }

  async send(restorePointId: string, diskId: string, format: DiskImageFormat, force: boolean, req: Request, res: Response): Promise<void> {
    const view = await this.queries.execute(new GetRestorePointQuery(restorePointId));
    const root = (await this.repositories.usable(view.repositoryId)).root;
    const known = readTarget(await this.chains.load(view.vmId, view.repositoryId), restorePointId, diskId);
    const files = known.lineage.flatMap((p) => p.disks.map((d) => realPath(join(root, d.file))));
    await this.held.during(files, async () => {
      // read again once held: a delete that started before the hold is seen here, one that starts after sees the hold
      const state = await this.chains.load(view.vmId, view.repositoryId);
      const { disk } = readTarget(state, restorePointId, diskId);
      const refusal = corruptionRefusal(state, restorePointId, force);
      if (refusal) throw new DomainError('conflict', refusal);
      const integrity = mountIntegrity(integrityOf(state, restorePointId), diskId);
      const file = realPath(join(root, disk.file));
      const base = { restorePointId, vmId: view.vmId, repositoryId: view.repositoryId, diskId, format, integrity: integrity.integrity, forced: force && integrity.integrity === 'corrupt' };
      const headers = {
        ...integrityHeaders(integrity),
        'Cache-Control': 'no-store',
        'Content-Type': 'application/octet-stream',
        'Content-Disposition': contentDisposition(`${view.vmId}-${restorePointId}-${diskId}.${format === 'raw' ? 'img' : 'qcow2'}`),
      };
      const outcome = format === 'raw' ? await this.sendRaw(file, headers, req, res) : await this.sendQcow2(file, headers, req, res);
      if (outcome) await this.commands.execute(new RecordDiskImageDownloadCommand({ ...base, ...outcome })).catch((e) => this.logger.error(`recording the download of ${restorePointId}/${diskId} failed: ${String(e)}`));
    });
  }

  /** Null when no body was sent (416, HEAD): a refused request records nothing. */
  private async sendRaw(file: string, headers: Record<string, string>, req: Request, res: Response): Promise<Outcome | null> {
    const dir = await makeWorkDir(this.area);
    let reader: PointReader | undefined;
    try {
      reader = await openPointReader(file, dir).catch((error: Error) => {
        throw new DomainError('conflict', `${isChunkPointFile(file) ? 'the chunk store could not open' : 'qemu-nbd could not export'} ${file}: ${error.message}`);
      });
      const size = reader.size;
      res.setHeader('Accept-Ranges', 'bytes');
      const range = parseRange(typeof req.headers.range === 'string' ? req.headers.range : undefined, size);
      if (range.kind === 'unsatisfiable') {
        res.status(416).setHeader('Content-Range', `bytes */${size}`);
        res.json({ statusCode: 416, error: 'Range Not Satisfiable', message: `${range.reason}; the disk has ${size} bytes` });
        return null;
      }
      const start = range.kind === 'partial' ? range.start : 0;
      const end = range.kind === 'partial' ? range.end + 1 : size;
      // a client that reads frames (the CLI) gets the whole disk as its data and where it lies (image-extents.ts)
      const framing = range.kind === 'full' ? extentsFraming(req, reader.disk) : null;
      res.status(range.kind === 'partial' ? 206 : 200).set(headers);
      res.setHeader('Vary', 'Accept');
      if (range.kind === 'partial') res.setHeader('Content-Range', `bytes ${start}-${end - 1}/${size}`);
      if (framing) {
        res.setHeader('Content-Type', framing.codec ? `${EXTENTS_MEDIA_TYPE}; ${ZSTD_CODEC}` : EXTENTS_MEDIA_TYPE);
        res.setHeader(DISK_SIZE_HEADER, String(size));
      } else res.setHeader('Content-Length', String(end - start));
      const recordedRange = range.kind === 'partial' ? `bytes=${start}-${end - 1}` : null;
      if (req.method === 'HEAD') {
        res.end();
        return null;
      }
      const figures: ReadFigures = { read: 0, zero: 0, sent: 0 };
      try {
        // the export is stopped before the answer ends, so a client that has its whole image finds nothing running
        // for it on the hub: one that counts bytes (Content-Length) has it with the last byte, which waits for the stop
        const last = framing || end === start ? null : await reader.disk.read(end - 1, 1);
        await sendImage(reader.disk, start, last ? end - 1 : end, res, figures, framing);
        await reader.close();
        res.end(last ?? undefined);
        await finished(res);
        if (last) figures.sent += last.length;
        return { bytes: figures.sent, size, range: recordedRange, completed: figures.sent === end - start, error: null };
      } catch (error) {
        if (!res.destroyed) res.destroy();
        return { bytes: figures.sent, size, range: recordedRange, completed: false, error: stopReason(error) };
      }
    } finally {
      await reader?.close().catch((e) => this.logger.error(`stopping the image export of ${file} failed: ${String(e)}`));
      await removeWorkDir(dir);
    }
  }

  /** Whole file only: it is built for this request, so a range of it would mean building it again. */
  private async sendQcow2(file: string, headers: Record<string, string>, req: Request, res: Response): Promise<Outcome | null> {
    const dir = await makeWorkDir(this.area);
    const aborted = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) aborted.abort();
    };
    res.once('close', onClose);
    try {
      const { requiredBytes, freeBytes } = await measureQcow2(file, this.area);
      const noRoom = spaceRefusal(requiredBytes, freeBytes, this.area);
      if (noRoom) throw new DomainError('conflict', noRoom);
      const image = join(dir, 'image.qcow2');
      try {
        await convertToQcow2(file, image, aborted.signal);
      } catch (error) {
        if (aborted.signal.aborted) return { bytes: 0, size: 0, range: null, completed: false, error: 'the client went away while the image was being built' };
        throw new DomainError('conflict', `could not build the qcow2 image: ${error instanceof Error ? error.message : String(error)}`);
      }
      const handle = await fs.open(image, 'r');
      try {
        const size = (await handle.stat()).size;
        res.status(200).set(headers);
        res.setHeader('Accept-Ranges', 'none');
        res.setHeader('Content-Length', String(size));
        if (req.method === 'HEAD') {
          res.end();
          return null;
        }
        const counter = new ByteCounter();
        try {
          await pipeline(handle.createReadStream({ highWaterMark: FILE_CHUNK, autoClose: false }), counter, res);
          return { bytes: counter.bytes, size, range: null, completed: counter.bytes === size, error: null };
        } catch (error) {
          if (!res.destroyed) res.destroy();
          return { bytes: counter.bytes, size, range: null, completed: false, error: stopReason(error) };
        }
      } finally {
        await handle.close().catch(() => undefined);
      }
    } finally {
      res.off('close', onClose);
      await removeWorkDir(dir);
    }
  }
}

/**
 * Frames for a client that reads them (the CLI): the whole disk as its data and where it lies (image-extents.ts), and
 * a chunk point's blocks zstd-packed as they are stored when the client names the codec too.
 */
function extentsFraming(req: Request, disk: PointDisk): Framing {
  const accept = req.headers.accept;
  const extents = typeof accept === 'string' ? accept.split(',').map(extentsType).filter((t) => t.extents) : [];
  if (!extents.length) return null;
  return { codec: disk.readPacked && extents.some((t) => t.codec === 'zstd') ? 'zstd' : null };
}

function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function stopReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_STREAM_DESTROYED' || code === 'EPIPE' || code === 'ECONNRESET') return 'the client went away';
  return error instanceof Error ? error.message : String(error);
}
