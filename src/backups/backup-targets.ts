import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createFull, createOverlay } from '../repositories/qcow2/qemu-img';
import { removeDurably } from '../repositories/qcow2/durable-fs';
import { manifestPath } from '../repositories/qcow2/manifest';

export interface TargetFile {
  diskId: string;
  /** Relative to the repository root. */
  file: string;
  parentFile: string | null;
  virtualSize: number;
}

export function targetPath(vmId: string, diskId: string, restorePointId: string): string {
  return `${vmId}/${diskId}/${restorePointId}.qcow2`;
}

/** A new image for a full backup; an overlay on the previous point (same directory, relative backing name) for an incremental. */
export async function createTarget(root: string, target: TargetFile): Promise<void> {
  const abs = join(root, target.file);
  await mkdir(dirname(abs), { recursive: true, mode: 0o750 });
  await rm(abs, { force: true });
  if (target.parentFile) await createOverlay(abs, target.parentFile.split('/').pop()!, { virtualSize: target.virtualSize });
  else await createFull(abs, target.virtualSize);
}

/** Removes what a failed backup wrote: its target images and, if written, its manifest. */
export async function removeTargets(root: string, vmId: string, restorePointId: string, files: string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const file of files) if (await removeDurably(join(root, file))) removed.push(file);
  if (await removeDurably(manifestPath(root, vmId, restorePointId))) removed.push(`${vmId}/manifests/${restorePointId}.json`);
  return removed;
}
