import { Injectable } from '@nestjs/common';
import { mkdir, open, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createFull, createOverlay, synthesizeFull } from '../../repositories/qcow2/qemu-img';
import { chunkPointOf, removeEmptyPointDir } from '../../repositories/chunks/chunk-points';
import { configurationFileOf, configurationFileRef, ConfigurationFileRef } from '../../repositories/qcow2/configuration-files';
import { digestFileOf, digestFileRef, DigestFileRef, synthesizedDigestFile } from '../../repositories/qcow2/digest-files';
import { insideRoot } from '../../repositories/qcow2/inside-root';
import { removeDurably, removeStaleTemps } from '../../repositories/qcow2/durable-fs';
import { manifestPath, writeManifest } from '../../repositories/qcow2/manifest';
import { toManifest } from '../../restore-points/chain-files';
import { RestorePoint } from '../../restore-points/chain.events';

export interface TargetFile {
  diskId: string;
  /** Relative to the repository root. */
  file: string;
  parentFile: string | null;
  virtualSize: number;
  /** A synthetic full: the file (relative to the root) of the point whose view, read through its chain, the new file starts as. */
  synthesizedFrom?: string;
}

export function targetPath(vmId: string, diskId: string, restorePointId: string): string {
  return `${vmId}/${diskId}/${restorePointId}.qcow2`;
}

/** The disk a target file is of: `vm/disk/point.qcow2`, or a chunk point's `chunks/points/vm/point/disk.idx`. */
function diskOf(file: string): string | undefined {
  const chunk = chunkPointOf(file);
  return (chunk ? chunk.name.split('/')[2] : file.split('/')[1]) || undefined;
}

/** The files a backup writes into a repository: its target images and the restore point's manifest. */
@Injectable()
export class TargetFiles {
  /**
   * A new image for a full backup; an overlay on the previous point (same directory, relative backing name) for an
   * incremental. Every caller names a point that has no file yet (a backup's point id is new, a sync run removes what
   * a cut-short run left before it starts), so a file (or symlink) already there is someone else's: it is refused,
   * never removed or overwritten. A create that fails leaves no file.
   */
  async create(root: string, target: TargetFile, signal?: AbortSignal): Promise<void> {
    const abs = insideRoot(root, target.file);
    await mkdir(dirname(abs), { recursive: true, mode: 0o750 });
    // claimed with O_EXCL first (a symlink counts as there and is not followed): of two writers of one name, one
    // fails here, before either writes, and neither's failure removes the other's file
    await open(abs, 'wx').then((f) => f.close(), (error: NodeJS.ErrnoException) => {
      throw error.code === 'EEXIST' ? new Error(`refusing to overwrite existing image ${abs}`) : error;
    });
    try {
      const claimed = { overwrite: true };
      if (target.parentFile) await createOverlay(abs, target.parentFile.split('/').pop()!, { ...claimed, virtualSize: target.virtualSize });
      // the copy of a whole point: minutes for a large disk, stopped (its qemu-img killed) by `signal`
      else if (target.synthesizedFrom) await synthesizeFull(insideRoot(root, target.synthesizedFrom), abs, target.virtualSize, { ...claimed, ...(signal ? { signal } : {}) });
      else await createFull(abs, target.virtualSize, claimed);
    } catch (error) {
      // a copy cut short is this call's own file: it goes here, so a caller lists only files that were made
      await removeDurably(abs);
      throw error;
    }
  }

  async exists(root: string, file: string): Promise<boolean> {
    return stat(insideRoot(root, file)).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return false;
        throw error;
      },
    );
  }

  async bytes(root: string, file: string): Promise<number> {
    return (await stat(join(root, file))).size;
  }

  /** The block digests the agent uploaded for a disk (src/backups/adapters/job-uploads.ts), or null when it sent none. */
  digests(root: string, vmId: string, restorePointId: string, diskId: string): Promise<DigestFileRef | null> {
    return digestFileRef(root, digestFileOf(vmId, restorePointId, diskId));
  }

  /**
   * A synthetic full's digests: those of every point of the lineage it copied (oldest first) and the ones the agent
   * uploaded for the changes, as one set in the point's digest file. Without a whole set the point records none, and
   * the partial file goes: no file of a point is left that its manifest does not name.
   */
  async synthesizedDigests(root: string, vmId: string, restorePointId: string, diskId: string, lineage: readonly (DigestFileRef | null | undefined)[]): Promise<DigestFileRef | null> {
    const own = digestFileOf(vmId, restorePointId, diskId);
    const combined = await synthesizedDigestFile(root, lineage, await digestFileRef(root, own));
    if (!combined) await removeDurably(join(root, own));
    return combined;
  }

  /** The VM's configuration the agent uploaded for the point (src/backups/adapters/job-uploads.ts), or null when it sent none. */
  configuration(root: string, vmId: string, restorePointId: string): Promise<ConfigurationFileRef | null> {
    return configurationFileRef(root, configurationFileOf(vmId, restorePointId));
  }

  async writeManifest(root: string, point: RestorePoint): Promise<void> {
    await writeManifest(root, toManifest(point));
  }

  /**
   * Removes what a failed backup wrote: its target images, its digest files, configuration and manifest if
   * written, and the temp files of those whose writer died mid-write (a hub killed during a digest upload).
   */
  async remove(root: string, vmId: string, restorePointId: string, files: string[]): Promise<string[]> {
    // every path is checked before the first unlink: a list with one path outside the repository removes nothing
    const manifest = insideRoot(root, manifestPath(root, vmId, restorePointId));
    const digestFiles = files.flatMap((file) => diskOf(file) ?? []).map((diskId) => digestFileOf(vmId, restorePointId, diskId));
    const configuration = configurationFileOf(vmId, restorePointId);
    for (const file of [...files, ...digestFiles, configuration]) insideRoot(root, file);
    const removed: string[] = [];
    for (const file of files) if (await removeDurably(join(root, file))) removed.push(file);
    for (const file of files) if (chunkPointOf(file)) await removeEmptyPointDir(join(root, file));
    if (await removeDurably(manifest)) removed.push(`${vmId}/manifests/${restorePointId}.json`);
    for (const digests of digestFiles) if (await removeDurably(join(root, digests))) removed.push(digests);
    if (await removeDurably(join(root, configuration))) removed.push(configuration);
    const manifests = dirname(manifest);
    for (const temp of await removeStaleTemps(manifests, `${restorePointId}.`)) removed.push(`${vmId}/manifests/${temp}`);
    return removed;
  }
}
