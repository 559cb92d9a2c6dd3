import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import {
  CHAIN_STREAM_PREFIX,
  RESTORE_POINT_ADDED,
  RESTORE_POINT_SYNCED,
  RESTORE_POINT_CORRUPTED,
  RESTORE_POINT_DELETE_FAILED,
  RESTORE_POINT_DELETE_STARTED,
  RESTORE_POINT_DELETED,
  RESTORE_POINT_MERGED,
  RESTORE_POINT_VERIFIED,
  RESTORE_POINT_RECYCLED,
  RESTORE_POINT_UNDELETED,
  PointSource,
  RestorePoint,
  RestorePointCorrupted,
  RestorePointDeleted,
  RestorePointDeleteFailed,
  RestorePointMerged,
  RestorePointVerified,
  RestorePointRecycled,
} from '../../src/restore-points/chain.events';
import { RestorePointView } from './restore-point.entity';

@Injectable()
export class RestorePointsProjector implements Projector {
  readonly name = 'restore-points';
  readonly filter = { streamPrefixes: [CHAIN_STREAM_PREFIX] };
  readonly tables = ['rm_restore_points'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const repo = manager.getRepository(RestorePointView);
    switch (event.type) {
      case RESTORE_POINT_ADDED:
      case RESTORE_POINT_SYNCED: {
        const { synced, ...p } = event.data as unknown as RestorePoint & { synced?: PointSource };
        await repo.insert({
          restorePointId: p.restorePointId,
          vmId: p.vmId,
          repositoryId: p.repositoryId,
          backupId: p.backupId,
          type: p.type,
          parentId: p.parentId,
          createdAt: new Date(p.createdAt),
          disks: p.disks,
          status: 'available',
          chainPosition: event.position,
          verifiedAt: null,
          verifyOk: null,
          verifyProblems: null,
          verifyWarnings: null,
          integrity: 'unverified',
          damaged: [],
          verifyDigests: null,
          consistency: p.consistency ?? null,
          consistencyReason: p.consistencyReason ?? null,
          freezeMs: p.freezeMs ?? null,
          configuration: p.configuration ?? null,
          disksLeftOut: p.disksLeftOut ?? [],
          source: synced ?? null,
        });
        return;
      }
      case RESTORE_POINT_DELETE_STARTED:
        await repo.update({ restorePointId: (event.data as { restorePointId: string }).restorePointId }, { status: 'deleting' });
        return;
      case RESTORE_POINT_DELETE_FAILED: {
        // The point stays; when the surgery stopped past the point of no return it reads as a failed check until deleted again.
        const d = event.data as RestorePointDeleteFailed['data'];
        const damaged = d.undone ? {} : { verifiedAt: event.createdAt, verifyOk: false, verifyProblems: [`a delete stopped midway: ${d.reason}`], verifyWarnings: [], integrity: 'corrupt' as const };
        const before = await repo.findOneBy({ restorePointId: d.restorePointId });
        // a purge that failed leaves the point where it was: in the recycle bin
        await repo.update({ restorePointId: d.restorePointId }, { status: before?.purgeAfter ? 'recycled' : 'available', ...damaged });
        return;
      }
      case RESTORE_POINT_RECYCLED: {
        const d = event.data as RestorePointRecycled['data'];
        await repo.update({ restorePointId: d.restorePointId }, { status: 'recycled', recycledAt: new Date(d.recycledAt), purgeAfter: new Date(d.purgeAfter), recycledBy: d.by });
        return;
      }
      case RESTORE_POINT_UNDELETED:
        await repo.update({ restorePointId: (event.data as { restorePointId: string }).restorePointId }, { status: 'available', recycledAt: null, purgeAfter: null, recycledBy: null });
        return;
      case RESTORE_POINT_MERGED: {
        const d = event.data as RestorePointMerged['data'];
        await repo.delete({ restorePointId: d.restorePointId });
        await repo.update({ restorePointId: d.intoId }, { type: 'full', parentId: null, disks: d.disks });
        return;
      }
      case RESTORE_POINT_DELETED: {
        const d = event.data as RestorePointDeleted['data'];
        const removed = await repo.findOneBy({ restorePointId: d.restorePointId });
        await repo.delete({ restorePointId: d.restorePointId });
        if (removed) {
          const child = await repo.findOneBy({ parentId: d.restorePointId, vmId: removed.vmId, repositoryId: removed.repositoryId });
          if (child) await repo.update({ restorePointId: child.restorePointId }, { parentId: removed.parentId, disks: d.childDisks ?? child.disks });
        }
        return;
      }
      case RESTORE_POINT_VERIFIED: {
        const d = event.data as RestorePointVerified['data'];
        const before = await repo.findOneBy({ restorePointId: d.restorePointId });
        if (!before) return;
        // the chain decider's rule (chain.aggregate.ts): corrupt is final, verified only by content
        const byContent = d.verifiedAt !== undefined && (d.digests ?? 'all') === 'all';
        const integrity = before.integrity === 'corrupt' || !d.ok ? 'corrupt' : byContent ? 'verified' : before.integrity;
        await repo.update(
          { restorePointId: d.restorePointId },
          { verifiedAt: d.verifiedAt ? new Date(d.verifiedAt) : event.createdAt, verifyOk: d.ok, verifyProblems: d.problems, verifyWarnings: d.warnings, integrity, verifyDigests: d.digests ?? null },
        );
        return;
      }
      case RESTORE_POINT_CORRUPTED: {
        const { restorePointId, diskId, offset, length, expected, actual, readsThrough } = event.data as RestorePointCorrupted['data'];
        for (const id of [restorePointId, ...readsThrough]) {
          const before = await repo.findOneBy({ restorePointId: id });
          if (before) await repo.update({ restorePointId: id }, { integrity: 'corrupt', damaged: [...before.damaged, { diskId, offset, length, expected, actual, inPointId: restorePointId }] });
        }
        return;
      }
    }
  }
}
