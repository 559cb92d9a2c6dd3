/**
 * Pure decisions of the dirty-bitmap lifecycle (no processes, no files), so
 * every rule unit-tests on its own. The driver feeds them what
 * `qemu-img info` says and carries out what they return.
 */
import type { BitmapInfo } from '../../../qemu/qemu-img';
import type { BackupMode, ChainCheck, DiskFormat, PreparedDisk } from './types';

export const DEFAULT_BITMAP_PREFIX = 'sendense-';

export function bitmapName(prefix: string, pointId: string): string {
  return `${prefix}${pointId}`;
}

/** What the lifecycle needs to know about one disk, read while no writer has the image. */
export interface DiskBitmapState {
  diskId: string;
  format: DiskFormat;
  bitmaps: BitmapInfo[];
}

/** Why an incremental since `sincePointId` cannot be taken from this disk, or undefined when it can. */
export function baseProblem(disk: DiskBitmapState, sincePointId: string, prefix: string): string | undefined {
  const name = bitmapName(prefix, sincePointId);
  if (disk.format !== 'qcow2') return `disk ${disk.diskId} is ${disk.format}: it cannot keep persistent dirty bitmaps (full backups only)`;
  const bitmap = disk.bitmaps.find((b) => b.name === name);
  if (!bitmap) return `bitmap ${name} on ${disk.diskId} is missing`;
  if (bitmap.inUse) return `bitmap ${name} on ${disk.diskId} is inconsistent (in-use flag left by a writer that was killed)`;
  if (!bitmap.enabled) return `bitmap ${name} on ${disk.diskId} is disabled (it has not been recording writes)`;
  return undefined;
}

/** Can every disk of the VM continue the chain from `sincePointId`? One broken disk breaks the VM's chain. */
export function checkChain(disks: DiskBitmapState[], sincePointId: string, prefix: string): ChainCheck {
  const perDisk = disks.map((d) => {
    const reason = baseProblem(d, sincePointId, prefix);
    return reason ? { diskId: d.diskId, ok: false, reason } : { diskId: d.diskId, ok: true };
  });
  const reasons = perDisk.filter((d) => !d.ok).map((d) => d.reason as string);
  if (!reasons.length) return { ok: true, disks: perDisk };
  // A raw disk never had change tracking to lose: that is its normal mode, not an incident.
  const broken = perDisk.some((d, i) => !d.ok && disks[i].format === 'qcow2');
  return { ok: false, reason: reasons.join('; '), broken, disks: perDisk };
}

export interface BackupDecision {
  mode: BackupMode;
  reason?: string;
  disks: PreparedDisk[];
}

/**
 * Full or incremental, the same for every disk of the VM: incremental only if
 * every disk has a consistent, enabled `<prefix><sincePointId>`. Never an
 * incremental with a bitmap that may miss writes.
 */
export function decideBackup(disks: DiskBitmapState[], req: { newPointId: string; sincePointId: string | null }, prefix: string): BackupDecision {
  const newBitmap = (d: DiskBitmapState): Partial<PreparedDisk> => (d.format === 'qcow2' ? { newBitmap: bitmapName(prefix, req.newPointId) } : {});
  if (req.sincePointId === null) {
    const reason = 'no previous restore point to continue from';
    return {
      mode: 'full',
      reason,
      disks: disks.map((d) => ({ diskId: d.diskId, mode: 'full', ...newBitmap(d), reason: d.format === 'qcow2' ? reason : baseProblem(d, '', prefix) })),
    };
  }
  const chain = checkChain(disks, req.sincePointId, prefix);
  if (chain.ok) {
    const base = bitmapName(prefix, req.sincePointId);
    return { mode: 'incremental', disks: disks.map((d) => ({ diskId: d.diskId, mode: 'incremental', bitmap: base, ...newBitmap(d) })) };
  }
  const reason = chain.reason as string;
  return {
    mode: 'full',
    reason,
    disks: chain.disks.map((c, i) => ({
      diskId: c.diskId,
      mode: 'full',
      ...newBitmap(disks[i]),
      reason: c.ok ? `another disk of the VM needs a full backup: ${reason}` : c.reason,
    })),
  };
}

/** What to do with the new bitmap of a disk at prepare time. */
export type NewBitmapAction = 'add' | 'keep' | 'replace' | 'none';

/**
 * A prepare retried with the same newPointId finds its bitmap already there:
 * it has recorded since the earlier attempt, a superset of what this attempt
 * needs, so it is kept; an inconsistent one is replaced.
 */
export function newBitmapAction(disk: DiskBitmapState, newPointId: string, prefix: string): NewBitmapAction {
  if (disk.format !== 'qcow2') return 'none';
  const existing = disk.bitmaps.find((b) => b.name === bitmapName(prefix, newPointId));
  if (!existing) return 'add';
  return existing.inUse || !existing.enabled ? 'replace' : 'keep';
}

export interface CompletionPlan {
  /** Failure path: merge `from` into `into` first. */
  merge?: { from: string; into: string };
  /** Then remove these, in order. */
  remove: string[];
  warnings: string[];
}

/**
 * After a backup:
 * - success: the new bitmap is the base of the next incremental; every other
 *   bitmap of ours (the old base, stragglers of crashed attempts, broken ones)
 *   is removed.
 * - failure/cancel: the old base stays the base. The new bitmap's writes are
 *   merged into it (they are already there while the base stayed enabled and
 *   consistent; the merge makes that hold even if it did not), then the new
 *   bitmap is removed. With no usable base there is nothing to merge into:
 *   the next backup is a full anyway.
 */
export function planCompletion(disk: DiskBitmapState, req: { newPointId: string; sincePointId: string | null; success: boolean }, prefix: string): CompletionPlan {
  if (disk.format !== 'qcow2') return { remove: [], warnings: [] };
  const newName = bitmapName(prefix, req.newPointId);
  const mine = disk.bitmaps.filter((b) => b.name.startsWith(prefix));
  const newBitmap = mine.find((b) => b.name === newName);
  const warnings: string[] = [];
  if (req.success) {
    if (!newBitmap) warnings.push(`bitmap ${newName} on ${disk.diskId} is missing: the next backup will be full`);
    else if (newBitmap.inUse) warnings.push(`bitmap ${newName} on ${disk.diskId} is inconsistent (in-use flag left by a writer that was killed): the next backup will be full`);
    return { remove: mine.filter((b) => b.name !== newName).map((b) => b.name), warnings };
  }
  if (!newBitmap) return { remove: [], warnings };
  if (req.sincePointId === null) return { remove: [newName], warnings };
  const problem = baseProblem(disk, req.sincePointId, prefix);
  if (problem) {
    warnings.push(`${problem}: nothing to merge ${newName} into; the next backup will be full`);
    return { remove: [newName], warnings };
  }
  if (newBitmap.inUse) {
    // qemu refuses to merge from an inconsistent bitmap. The base recorded the same writes (it was enabled all along).
    warnings.push(`bitmap ${newName} on ${disk.diskId} is inconsistent and cannot be merged; dropped (the base ${bitmapName(prefix, req.sincePointId)} kept recording)`);
    return { remove: [newName], warnings };
  }
  return { merge: { from: newName, into: bitmapName(prefix, req.sincePointId) }, remove: [newName], warnings };
}
