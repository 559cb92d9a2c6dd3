import { stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isChunkPointFile, removeEmptyPointDir } from '../repositories/chunks/chunk-points';
import { removeDurably } from '../repositories/qcow2/durable-fs';
import { deleteNewest, findMergeJournals, mergeOldestIntoNext, removeMiddle, resumeMerge } from '../repositories/qcow2/chain-surgery';
import { removeConfigurationFile } from '../repositories/qcow2/configuration-files';
import { combineDigestFiles, removeDigestFile } from '../repositories/qcow2/digest-files';
import { manifestPath, RestorePointManifest, writeManifest } from '../repositories/qcow2/manifest';
import { PendingDelete } from './chain.aggregate';
import { PointDisk, RestorePoint } from './chain.events';

/**
 * The file side of deleting a restore point, for every disk, written so that
 * running it again after a crash at any point finishes the job.
 * Returns the child's disks as they are afterwards (null when there is no child).
 * Block digests describe logical content, which merge and rebase keep, so the surviving child's set
 * becomes the union of both (its own blocks winning). The removed point's digest files go only after
 * the child's manifest names the combined ones, just before its manifest.
 */
export async function deletePointFiles(root: string, pending: PendingDelete, point: RestorePoint, child: RestorePoint | undefined, parent: RestorePoint | undefined): Promise<PointDisk[] | null> {
  const abs = (file: string) => join(root, file);
  switch (pending.strategy) {
    case 'remove-newest':
      for (const disk of point.disks) if (!isChunkPointFile(disk.file)) await deleteNewest(abs(disk.file));
      await removeSideFiles(root, point);
      await removeDurably(manifestPath(root, point.vmId, point.restorePointId));
      return null;
    case 'merge-into-child': {
      const disks: PointDisk[] = [];
      for (const disk of point.disks) {
        const childDisk = child!.disks.find((d) => d.diskId === disk.diskId)!;
        // a chunk point's index is whole: its child reads nothing through it, and only the digests are combined
        if (!isChunkPointFile(disk.file)) await mergeDisk(abs(disk.file), abs(childDisk.file), `${point.restorePointId}-${disk.diskId}`);
        const digests = await combineDigestFiles(root, disk.digests, childDisk.digests);
        disks.push({ ...childDisk, parentFile: null, fileBytes: (await stat(abs(childDisk.file))).size, digests });
      }
      await writeManifest(root, toManifest({ ...child!, type: 'full', parentId: null, disks }));
      await removeSideFiles(root, point);
      await removeDurably(manifestPath(root, point.vmId, point.restorePointId));
      return disks;
    }
    case 'remove-middle': {
      const disks: PointDisk[] = [];
      for (const disk of point.disks) {
        const childDisk = child!.disks.find((d) => d.diskId === disk.diskId)!;
        if (!isChunkPointFile(disk.file)) await removeMiddle({ child: abs(childDisk.file), middle: abs(disk.file), parent: abs(disk.parentFile!) });
        const digests = await combineDigestFiles(root, disk.digests, childDisk.digests);
        disks.push({ ...childDisk, parentFile: disk.parentFile, fileBytes: (await stat(abs(childDisk.file))).size, digests });
      }
      await writeManifest(root, toManifest({ ...child!, parentId: parent!.restorePointId, disks }));
      await removeSideFiles(root, point);
      await removeDurably(manifestPath(root, point.vmId, point.restorePointId));
      return disks;
    }
  }
}

/** The removed point's own side files: its disks' digests and its configuration (the child keeps its own). */
async function removeSideFiles(root: string, point: RestorePoint): Promise<void> {
  for (const disk of point.disks) if (disk.digests) await removeDigestFile(root, disk.digests.file);
  // a chunk point's index goes with them; the chunks it alone named are garbage until a collection (docs/design/storage.md)
  for (const disk of point.disks) {
    if (!isChunkPointFile(disk.file)) continue;
    await removeDurably(join(root, disk.file));
    await removeEmptyPointDir(join(root, disk.file));
  }
  if (point.configuration) await removeConfigurationFile(root, point.configuration.file);
}

/** Starts the merge, or finishes one a crash interrupted (its journal is still there), or sees it already done. */
async function mergeDisk(oldest: string, next: string, id: string): Promise<void> {
  const journal = (await findMergeJournals(dirname(oldest))).find((j) => j.endsWith(`.merge-${id}.json`));
  if (journal) {
    await resumeMerge(journal);
    return;
  }
  const oldestExists = await stat(oldest).then(() => true, () => false);
  if (oldestExists) await mergeOldestIntoNext({ oldest, next, id });
}

export function toManifest(point: RestorePoint): RestorePointManifest {
  return {
    schemaVersion: 1,
    restorePointId: point.restorePointId,
    vmId: point.vmId,
    createdAt: point.createdAt,
    parentId: point.parentId,
    type: point.type,
    disks: point.disks.map((d) => ({ diskId: d.diskId, file: d.file, parentFile: d.parentFile, virtualSize: d.virtualSize, fileBytes: d.fileBytes, changeRef: d.changeRef, ...(d.digests ? { digests: d.digests } : {}) })),
    ...(point.configuration ? { configuration: point.configuration } : {}),
    // what a rescan finds again: a point lacking a disk must not read whole once the read models are rebuilt
    ...(point.disksLeftOut?.length ? { disksLeftOut: point.disksLeftOut } : {}),
  };
}

/** Every file of a restore point in the repository: its disks, their digests, its configuration and its manifest. */
export function pointFiles(root: string, point: RestorePoint): string[] {
  return [
    ...point.disks.flatMap((d) => [join(root, d.file), ...(d.digests ? [join(root, d.digests.file)] : [])]),
    ...(point.configuration ? [join(root, point.configuration.file)] : []),
    manifestPath(root, point.vmId, point.restorePointId),
  ];
}
