import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import {
  CHAIN_STREAM_PREFIX,
  PointDisk,
  RESTORE_POINT_ADDED,
  RESTORE_POINT_DELETED,
  RESTORE_POINT_MERGED,
  RESTORE_POINT_SYNCED,
  RestorePoint,
  RestorePointDeleted,
  RestorePointMerged,
} from '../../src/restore-points/chain.events';
import { REPOSITORY_CHUNKS_MEASURED, REPOSITORY_STREAM_PREFIX, RepositoryChunksMeasured } from '../../src/repositories/registry/repository.events';

export const REPOSITORY_USAGE_TABLES = ['rm_repository_point_bytes', 'rm_repository_usage', 'rm_repository_stored_bytes'];

const HOUR_MS = 3_600_000;
/** A repository's total ($1): its store as last measured, or else its points' files. */
export const TOTAL_BYTES = `COALESCE((SELECT s.stored_bytes FROM rm_repository_stored_bytes s WHERE s.repository_id = $1), (SELECT COALESCE(sum(p.bytes), 0) FROM rm_repository_point_bytes p WHERE p.repository_id = $1))`;
/** The longest history GET /repositories/{id}/usage gives (its `days`), and a day for the hour it starts in. */
const USAGE_KEPT_DAYS = 366;
const bytesOf = (disks: PointDisk[]) => disks.reduce((n, d) => n + d.fileBytes, 0);
/** chain-<vmId>-<repositoryId>: the repository is the stream's, whatever the event names. */
const repositoryOf = (streamId: string) => /([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i.exec(streamId)?.[1] ?? null;

/**
 * Chain events → each repository's points' bytes and their total by the hour. A recycled point keeps its files until
 * it is purged (RestorePointDeleted), so recycling and undeleting change nothing here. The total is summed again
 * after each change rather than carried, and an event that changes no point (one applied twice) writes no sample,
 * so a replay leaves the same figures. A chunks repository's points share its store, and a point's file is its
 * index alone: once the store has been measured (RepositoryChunksMeasured, after each backup, delete and
 * collection), its total is the store's bytes as last measured.
 */
@Injectable()
export class RepositoryUsageProjector implements Projector {
  readonly name = 'repository-usage';
  readonly filter = { streamPrefixes: [CHAIN_STREAM_PREFIX, REPOSITORY_STREAM_PREFIX] };
  readonly tables = REPOSITORY_USAGE_TABLES;

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const q = (sql: string, params: unknown[]) => manager.query(sql, params);
    switch (event.type) {
      case RESTORE_POINT_ADDED:
      case RESTORE_POINT_SYNCED: {
        const p = event.data as unknown as RestorePoint;
        const inserted: unknown[] = await q(
          `INSERT INTO rm_repository_point_bytes (restore_point_id, repository_id, vm_id, parent_id, bytes) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (restore_point_id) DO NOTHING RETURNING restore_point_id`,
          [p.restorePointId, p.repositoryId, p.vmId, p.parentId, bytesOf(p.disks)],
        );
        if (!inserted.length) return;
        // a backup's point is dated by the hub's clock, as retention and RPOs read it (the store's own time is the
        // database's); a synced point's createdAt is the remote's and a rescanned one's its manifest's, maybe months
        // old: those count from when they arrived here
        const backedUp = event.type === RESTORE_POINT_ADDED && p.backupId !== null;
        return this.sample(p.repositoryId, backedUp ? new Date(p.createdAt) : event.createdAt, manager);
      }
      case RESTORE_POINT_MERGED: {
        // the oldest point's data now lives in its child, rewritten as a full
        const d = event.data as unknown as RestorePointMerged['data'];
        const removed: unknown[] = await q(`SELECT 1 FROM rm_repository_point_bytes WHERE restore_point_id = $1`, [d.restorePointId]);
        if (!removed.length) return;
        await q(`DELETE FROM rm_repository_point_bytes WHERE restore_point_id = $1`, [d.restorePointId]);
        await q(`UPDATE rm_repository_point_bytes SET parent_id = NULL, bytes = $2 WHERE restore_point_id = $1`, [d.intoId, bytesOf(d.disks)]);
        return this.sample(repositoryOf(event.streamId), event.createdAt, manager);
      }
      case REPOSITORY_CHUNKS_MEASURED: {
        const { repositoryId, storedBytes } = event.data as unknown as RepositoryChunksMeasured['data'];
        const changed: unknown[] = await q(
          `INSERT INTO rm_repository_stored_bytes (repository_id, stored_bytes) VALUES ($1, $2)
           ON CONFLICT (repository_id) DO UPDATE SET stored_bytes = EXCLUDED.stored_bytes WHERE rm_repository_stored_bytes.stored_bytes <> EXCLUDED.stored_bytes
           RETURNING repository_id`,
          [repositoryId, storedBytes],
        );
        if (!changed.length) return;
        return this.sample(repositoryId, event.createdAt, manager);
      }
      case RESTORE_POINT_DELETED: {
        const d = event.data as unknown as RestorePointDeleted['data'];
        const removed: { repository_id: string; parent_id: string | null }[] = await q(`SELECT repository_id, parent_id FROM rm_repository_point_bytes WHERE restore_point_id = $1`, [d.restorePointId]);
        if (!removed.length) return;
        await q(`DELETE FROM rm_repository_point_bytes WHERE restore_point_id = $1`, [d.restorePointId]);
        // a middle point's child was rebased onto its parent and took in what only the removed point held
        const childBytes = d.childDisks ? bytesOf(d.childDisks) : null;
        await q(`UPDATE rm_repository_point_bytes SET parent_id = $2, bytes = COALESCE($3, bytes) WHERE parent_id = $1 AND repository_id = $4`, [d.restorePointId, removed[0].parent_id, childBytes, removed[0].repository_id]);
        return this.sample(removed[0].repository_id, event.createdAt, manager);
      }
    }
  }

  /**
   * The hour's row holds the total after its last change; an hour without a change has no row. Rows older than the
   * longest history the API gives (USAGE_KEPT_DAYS) are removed as new ones come, all but the newest of them, which
   * is the total as it stood when that history begins: a repository's history stays bounded, pruned alike on a replay.
   */
  private async sample(repositoryId: string | null, at: Date, manager: EntityManager): Promise<void> {
    if (!repositoryId) return;
    const hour = new Date(Math.floor(at.getTime() / HOUR_MS) * HOUR_MS);
    await manager.query(
      `INSERT INTO rm_repository_usage (repository_id, hour, at, used_bytes)
       SELECT $1::uuid, $2::timestamptz, $3::timestamptz, ${TOTAL_BYTES}
       ON CONFLICT (repository_id, hour) DO UPDATE SET at = GREATEST(rm_repository_usage.at, EXCLUDED.at), used_bytes = EXCLUDED.used_bytes`,
      [repositoryId, hour, at],
    );
    await manager.query(
      `DELETE FROM rm_repository_usage WHERE repository_id = $1 AND hour < (
         SELECT max(hour) FROM rm_repository_usage WHERE repository_id = $1 AND hour < $2::timestamptz - make_interval(days => $3))`,
      [repositoryId, hour, USAGE_KEPT_DAYS],
    );
  }
}
