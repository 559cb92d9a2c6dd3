import { promises as fs } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { createFileAtomic, exists, fsyncDirectory, fsyncFile, removeDurably, removeStaleTemps, writeFileAtomic } from './durable-fs';
import { ChainSurgeryError, backingPathOf, findDependents } from './dependents';
import { commit, compare, info, rebase } from './qemu-img';

/*
 * Deleting the oldest point F of F <- N <- A <- ...: N must become standalone with exactly its old content.
 *
 *   commit   qemu-img commit -d N: N's clusters are written into F, so F now reads as N. N itself is left
 *            untouched (-d) and, reading F only where it has no cluster of its own, still reads as N.
 *   verify   (optional) F and N compare equal, proving the commit before anything is thrown away.
 *   replace  rename F over N's name: N's old file goes, the merged standalone image takes its name.
 *   relink   each child of N must back onto N's name with format qcow2; rebase -u any that do not.
 *
 * Crash safety: the journal is written before the commit, and every step looks at the files instead of
 * trusting the journal, so a step that finished but was not yet recorded is recognised and skipped.
 * There is no rollback: commit rewrites F in place, so from the moment the journal exists F's old content
 * may already be gone, and the only consistent outcome is to go forward. Before `replace`, N and all points
 * above it read correctly at every instant (F only changes where N shadows it); `replace` is one rename.
 */

const STEP_NAMES = ['commit', 'verify', 'replace', 'relink'] as const;
export type MergeStepName = (typeof STEP_NAMES)[number];

export interface MergeJournal {
  schemaVersion: 1;
  operation: 'merge-oldest';
  id: string;
  /** Base names in the journal's own directory, so a pending merge survives moving the repository. */
  oldest: string;
  next: string;
  children: string[];
  steps: MergeStepName[];
  completed: MergeStepName[];
  /** Opaque to this module: what the caller needs after a restart (restore point ids, job id). */
  context: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

export interface MergeInput {
  oldest: string;
  next: string;
  /** Defaults to the oldest file's name without .qcow2. */
  id?: string;
  /** Compare the merged image with N before replacing; reads the whole disk twice. */
  verify?: boolean;
  context?: Record<string, string>;
}

export interface MergePlan {
  journalPath: string;
  journal: MergeJournal;
}

export interface MergeResult {
  /** The former N, now standalone. */
  file: string;
  removed: string;
  fileBytes: number;
  stepsRun: MergeStepName[];
}

const JOURNAL_PREFIX = '.merge-';
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Checks the chain and builds the journal; writes nothing. */
export async function planMergeOldest(input: MergeInput): Promise<MergePlan> {
  const oldest = resolve(input.oldest);
  const next = resolve(input.next);
  const dir = dirname(oldest);
  if (dirname(next) !== dir) throw new ChainSurgeryError(`${oldest} and ${next} must be in the same directory`);
  const id = input.id ?? basename(oldest).replace(/\.qcow2$/, '');
  if (!ID_PATTERN.test(id)) throw new ChainSurgeryError(`merge id "${id}" must match ${ID_PATTERN}`);
  const pending = await findMergeJournals(dir);
  if (pending.length) throw new ChainSurgeryError(`unfinished merge in ${dir}: resume ${pending.map((p) => basename(p)).join(', ')} first`);
  for (const file of [oldest, next]) if (!(await exists(file))) throw new ChainSurgeryError(`${file} does not exist`);
  const oldestBacking = await backingPathOf(oldest);
  if (oldestBacking !== null) throw new ChainSurgeryError(`${basename(oldest)} is not the oldest point: it backs onto ${oldestBacking}`);
  const nextBacking = await backingPathOf(next);
  if (nextBacking !== oldest) throw new ChainSurgeryError(`${basename(next)} backs onto ${nextBacking ?? 'nothing'}, not ${basename(oldest)}`);
  // commit rewrites F in place: any other image reading through F would silently change content.
  const others = (await findDependents(oldest)).filter((d) => d !== next);
  if (others.length) throw new ChainSurgeryError(`${basename(oldest)} is also the backing file of ${others.map((d) => basename(d)).join(', ')}`);
  const children = (await findDependents(next)).map((c) => basename(c));
  const now = new Date().toISOString();
  const journal: MergeJournal = {
    schemaVersion: 1,
    operation: 'merge-oldest',
    id,
    oldest: basename(oldest),
    next: basename(next),
    children,
    steps: input.verify ? ['commit', 'verify', 'replace', 'relink'] : ['commit', 'replace', 'relink'],
    completed: [],
    context: { ...(input.context ?? {}) },
    createdAt: now,
    updatedAt: now,
  };
  return { journalPath: join(dir, `${JOURNAL_PREFIX}${id}.json`), journal };
}

/** Publishes the journal; fails if one with that id exists. From here on the merge must be finished. */
export async function beginMerge(plan: MergePlan): Promise<string> {
  await createFileAtomic(plan.journalPath, JSON.stringify(plan.journal, null, 2) + '\n');
  return plan.journalPath;
}

export async function mergeOldestIntoNext(input: MergeInput): Promise<MergeResult> {
  return resumeMerge(await beginMerge(await planMergeOldest(input)));
}

/** Runs every step not yet recorded, then removes the journal. Safe to call any number of times. */
export async function resumeMerge(journalPath: string): Promise<MergeResult> {
  // A hub killed while writing the journal or a manifest beside it leaves its temp file behind.
  await removeStaleTemps(dirname(journalPath));
  const journal = await readJournal(journalPath);
  const stepsRun: MergeStepName[] = [];
  for (const step of journal.steps) {
    if (journal.completed.includes(step)) continue;
    await runMergeStep(journalPath, step);
    stepsRun.push(step);
  }
  const dir = dirname(journalPath);
  const next = join(dir, journal.next);
  if ((await mergeState(dir, journal)) !== 'replaced') throw new ChainSurgeryError(`merge ${journal.id}: all steps recorded but ${journal.next} is not standalone`);
  const fileBytes = (await fs.stat(next)).size;
  await removeDurably(journalPath);
  return { file: next, removed: join(dir, journal.oldest), fileBytes, stepsRun };
}

/** Applies one step and records it in the journal. */
export async function runMergeStep(journalPath: string, step: MergeStepName): Promise<void> {
  const journal = await readJournal(journalPath);
  if (!journal.steps.includes(step)) throw new ChainSurgeryError(`merge ${journal.id} has no step ${step}`);
  await applyMergeStep(dirname(journalPath), journal, step);
  const updated: MergeJournal = { ...journal, completed: [...new Set([...journal.completed, step])], updatedAt: new Date().toISOString() };
  await writeFileAtomic(journalPath, JSON.stringify(updated, null, 2) + '\n');
}

/** Applies one step without recording it; idempotent. Exported so tests can crash between a step and its record. */
export async function applyMergeStep(dir: string, journal: MergeJournal, step: MergeStepName): Promise<void> {
  const oldest = join(dir, journal.oldest);
  const next = join(dir, journal.next);
  const state = await mergeState(dir, journal);
  switch (step) {
    case 'commit':
      if (state === 'replaced') return;
      await commit(next);
      // qemu-img flushes on close; this makes the durability of F independent of its cache mode.
      await fsyncFile(oldest);
      return;
    case 'verify':
      if (state === 'replaced') return;
      if (!(await compare(oldest, next))) throw new ChainSurgeryError(`merge ${journal.id}: ${journal.oldest} does not read like ${journal.next} after the commit; not replacing`);
      return;
    case 'replace':
      if (state === 'replaced') return;
      await fs.rename(oldest, next);
      await fsyncDirectory(dir);
      return;
    case 'relink':
      if (state !== 'replaced') throw new ChainSurgeryError(`merge ${journal.id}: cannot relink before ${journal.oldest} has replaced ${journal.next}`);
      for (const child of journal.children) await relinkChild(join(dir, child), journal.next);
      return;
  }
}

export async function findMergeJournals(dir: string): Promise<string[]> {
  const names = await fs.readdir(dir);
  return names.filter((n) => n.startsWith(JOURNAL_PREFIX) && n.endsWith('.json')).sort().map((n) => join(dir, n));
}

/** The only two states a merge can be in between steps; anything else means someone else touched the files. */
async function mergeState(dir: string, journal: MergeJournal): Promise<'before-replace' | 'replaced'> {
  const oldest = join(dir, journal.oldest);
  const next = join(dir, journal.next);
  if (!(await exists(next))) throw new ChainSurgeryError(`merge ${journal.id}: ${journal.next} is missing`);
  const oldestExists = await exists(oldest);
  const nextBacking = await backingPathOf(next);
  if (oldestExists && nextBacking === oldest) return 'before-replace';
  if (!oldestExists && nextBacking === null) return 'replaced';
  throw new ChainSurgeryError(`merge ${journal.id}: unexpected state (${journal.oldest} ${oldestExists ? 'exists' : 'is gone'}, ${journal.next} backs onto ${nextBacking ?? 'nothing'})`);
}

async function relinkChild(child: string, nextName: string): Promise<void> {
  if (!(await exists(child))) return;
  const image = await info(child);
  if (image.backingFilename === nextName && image.backingFormat === 'qcow2') return;
  await rebase(child, nextName, { unsafe: true });
}

async function readJournal(journalPath: string): Promise<MergeJournal> {
  const journal = JSON.parse(await fs.readFile(journalPath, 'utf8')) as MergeJournal;
  const names = [journal.oldest, journal.next, ...(Array.isArray(journal.children) ? journal.children : [])];
  const knownSteps = (steps: unknown) => Array.isArray(steps) && steps.every((s) => (STEP_NAMES as readonly unknown[]).includes(s));
  if (journal.schemaVersion !== 1 || journal.operation !== 'merge-oldest' || !knownSteps(journal.steps) || !knownSteps(journal.completed) || names.some((n) => typeof n !== 'string' || n !== basename(n))) {
    throw new ChainSurgeryError(`${journalPath} is not a merge journal this version understands`);
  }
  return journal;
}
