import { basename, dirname, relative, resolve } from 'node:path';
import { exists, fsyncFile, removeDurably } from './durable-fs';
import { ChainSurgeryError, backingPathOf, findDependents } from './dependents';
import { readBackingFileName } from '../../qemu/qcow2-header';
import { rebase } from './qemu-img';

export { ChainSurgeryError, findDependents } from './dependents';
export { mergeOldestIntoNext, planMergeOldest, beginMerge, runMergeStep, applyMergeStep, resumeMerge, findMergeJournals } from './merge-oldest';
export type { MergeInput, MergeJournal, MergePlan, MergeResult, MergeStepName } from './merge-oldest';

/** Removing the newest point touches nothing else; we only refuse when something still reads through it. */
export async function deleteNewest(file: string): Promise<{ removed: boolean }> {
  const target = resolve(file);
  if (!(await exists(target))) return { removed: false };
  const dependents = await findDependents(target);
  if (dependents.length) throw new ChainSurgeryError(`${basename(target)} is not the newest point: ${dependents.map((d) => basename(d)).join(', ')} back onto it`);
  return { removed: await removeDurably(target) };
}

export interface RemoveMiddleInput {
  /** The point directly above the one being removed; keeps its exact content. */
  child: string;
  /** The point being removed. */
  middle: string;
  /** The middle's backing file, which becomes the child's. */
  parent: string;
}

/**
 * Safe rebase copies into the child every cluster where reading through the middle differs from reading
 * through the parent, and rewrites the child's header last. A crash mid-rebase therefore leaves the child
 * still on the middle with some redundant clusters, and running this again finishes the job; a crash
 * after the rebase leaves only the unlink to do, which the second branch below recognises. An encrypted chain is
 * rebased in two steps (qemu-img.ts, rebase), and a crash between them leaves the child on the parent under a json:
 * name, which the third branch rewrites.
 */
export async function removeMiddle(input: RemoveMiddleInput): Promise<{ removed: boolean }> {
  const child = resolve(input.child);
  const middle = resolve(input.middle);
  const parent = resolve(input.parent);
  if (!(await exists(parent))) throw new ChainSurgeryError(`parent ${parent} does not exist`);
  const childBacking = await backingPathOf(child);
  if (childBacking === middle) {
    const middleBacking = await backingPathOf(middle);
    if (middleBacking !== parent) throw new ChainSurgeryError(`${basename(middle)} backs onto ${middleBacking ?? 'nothing'}, not ${parent}`);
    await refuseOtherDependents(middle, child);
    await rebase(child, relative(dirname(child), parent), { unsafe: false });
    await fsyncFile(child);
  } else if (childBacking !== parent) {
    throw new ChainSurgeryError(`${basename(child)} backs onto ${childBacking ?? 'nothing'}, neither ${middle} nor ${parent}`);
  } else if ((await readBackingFileName(child))?.startsWith('json:')) {
    // an encrypted rebase cut short after its copy: only the header's name is left to write
    await rebase(child, relative(dirname(child), parent), { unsafe: true });
    await fsyncFile(child);
  }
  if (!(await exists(middle))) return { removed: false };
  await refuseOtherDependents(middle, child);
  return { removed: await removeDurably(middle) };
}

async function refuseOtherDependents(file: string, allowed: string): Promise<void> {
  const others = (await findDependents(file)).filter((d) => d !== allowed);
  if (others.length) throw new ChainSurgeryError(`${basename(file)} is also the backing file of ${others.map((d) => basename(d)).join(', ')}; refusing to remove it`);
}
