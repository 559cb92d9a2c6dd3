import { Injectable } from '@nestjs/common';
import { EntityManager, In } from 'typeorm';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import { chainAggregate, ChainState } from '../../src/restore-points/chain.aggregate';
import { CHAIN_STREAM_PREFIX, ChainEvent } from '../../src/restore-points/chain.events';
import {
  MountTarget,
  RESTORE_ARCHIVE_DOWNLOADED,
  RESTORE_FILE_DOWNLOADED,
  RESTORE_MOUNT_ACCESSED,
  RESTORE_MOUNT_FAILED,
  RESTORE_MOUNT_READY,
  RESTORE_MOUNT_RELEASED,
  RESTORE_MOUNT_REQUESTED,
  RESTORE_MOUNT_STREAM_PREFIX,
  RestoreArchiveDownloaded,
  RestoreFileDownloaded,
  RestoreMountFailed,
  RestoreMountReady,
  RestoreMountReleased,
} from '../../src/restore/restore-mount.events';
import { RestoreMountView } from './restore-mount.entity';
import { RestorePointIntegrityView } from './restore-point-integrity.entity';

/**
 * Every time comes from the events themselves, so a rebuilt read model equals the live one. The
 * chains' verify results are followed too, so that a mount shows its point's integrity as it is
 * now, also when the point was found corrupt after it was mounted.
 */
@Injectable()
export class RestoreMountsProjector implements Projector {
  readonly name = 'restore-mounts';
  readonly filter = { streamPrefixes: [RESTORE_MOUNT_STREAM_PREFIX, CHAIN_STREAM_PREFIX] };
  readonly tables = ['rm_restore_mounts', 'rm_restore_point_integrity'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    if (event.streamId.startsWith(CHAIN_STREAM_PREFIX)) {
      await this.applyIntegrity(event, manager);
      return;
    }
    const repo = manager.getRepository(RestoreMountView);
    const mountId = (event.data as { mountId: string }).mountId;
    const at = event.createdAt;
    switch (event.type) {
      case RESTORE_MOUNT_REQUESTED: {
        const t = event.data as unknown as MountTarget;
        await repo.insert({
          mountId,
          restorePointId: t.restorePointId,
          vmId: t.vmId,
          repositoryId: t.repositoryId,
          diskId: t.diskId,
          file: t.file,
          chainFiles: t.chainFiles,
          hubInstance: t.hubInstance,
          status: 'mounting',
          partitionTable: null,
          diskSize: null,
          volumes: [],
          error: null,
          releaseReason: null,
          releaseDetail: null,
          requestedBy: event.metadata.actor,
          requestedAt: at,
          readyAt: null,
          endedAt: null,
          idleTimeoutSeconds: t.idleTimeoutSeconds,
          lastAccessAt: at,
          expiresAt: null,
          fileDownloads: 0,
          archiveDownloads: 0,
          bytesDownloaded: 0,
        });
        return;
      }
      case RESTORE_MOUNT_READY: {
        const d = event.data as RestoreMountReady['data'];
        const view = await repo.findOneBy({ mountId });
        if (!view) return;
        await repo.update({ mountId }, { status: 'ready', partitionTable: d.partitionTable, diskSize: d.diskSize, volumes: d.volumes, readyAt: at, ...this.touched(view, at) });
        return;
      }
      case RESTORE_MOUNT_FAILED:
        await repo.update({ mountId }, { status: 'failed', error: (event.data as RestoreMountFailed['data']).reason, endedAt: at, expiresAt: null });
        return;
      case RESTORE_MOUNT_ACCESSED: {
        const view = await repo.findOneBy({ mountId });
        if (view?.status === 'ready') await repo.update({ mountId }, this.touched(view, at));
        return;
      }
      case RESTORE_FILE_DOWNLOADED:
      case RESTORE_ARCHIVE_DOWNLOADED: {
        const d = event.data as (RestoreFileDownloaded | RestoreArchiveDownloaded)['data'];
        const view = await repo.findOneBy({ mountId });
        if (!view) return;
        await repo.update(
          { mountId },
          {
            fileDownloads: view.fileDownloads + (event.type === RESTORE_FILE_DOWNLOADED ? 1 : 0),
            archiveDownloads: view.archiveDownloads + (event.type === RESTORE_ARCHIVE_DOWNLOADED ? 1 : 0),
            bytesDownloaded: view.bytesDownloaded + d.bytes,
            ...(view.status === 'ready' ? this.touched(view, at) : {}),
          },
        );
        return;
      }
      case RESTORE_MOUNT_RELEASED: {
        const d = event.data as RestoreMountReleased['data'];
        await repo.update({ mountId }, { status: 'released', releaseReason: d.reason, releaseDetail: d.detail, endedAt: at, expiresAt: null });
        return;
      }
    }
  }

  /**
   * The rows of the points a chain event speaks about (its point, and those reading through a
   * damaged block) go through the chain decider's own evolve, whatever the event: the read model
   * says exactly what integrityOf says (corrupt is final; a deleted or merged-away point has no
   * integrity left), also for events the decider learns to weigh later.
   */
  private async applyIntegrity(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const data = event.data as { restorePointId?: unknown; readsThrough?: unknown };
    if (typeof data.restorePointId !== 'string') return;
    const ids = [...new Set([data.restorePointId, ...(Array.isArray(data.readsThrough) ? (data.readsThrough as string[]) : [])])];
    const repo = manager.getRepository(RestorePointIntegrityView);
    const rows = await repo.findBy({ restorePointId: In(ids) });
    const before: ChainState = {
      ...chainAggregate.initialState(),
      integrity: Object.fromEntries(rows.map((r) => [r.restorePointId, { status: r.status, verifiedAt: r.verifiedAt, damaged: r.damaged, problems: r.problems }])),
    };
    const after = chainAggregate.evolve(before, { type: event.type, data: event.data } as ChainEvent).integrity;
    for (const id of ids) {
      const entry = after[id];
      if (JSON.stringify(entry) === JSON.stringify(before.integrity[id])) continue;
      if (entry) await repo.upsert({ restorePointId: id, status: entry.status, verifiedAt: entry.verifiedAt, damaged: entry.damaged, problems: entry.problems }, ['restorePointId']);
      else await repo.delete({ restorePointId: id });
    }
  }

  private touched(view: RestoreMountView, at: Date): Pick<RestoreMountView, 'lastAccessAt' | 'expiresAt'> {
    return { lastAccessAt: at, expiresAt: new Date(at.getTime() + view.idleTimeoutSeconds * 1000) };
  }
}
