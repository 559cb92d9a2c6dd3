import { BlockDigests } from '../wire/block-digests';
import { DigestCoverage } from './chain.events';

/** One point of a chain, for one disk: its id and the digests of the blocks it wrote (null: recorded without digests). */
export interface DigestedPoint {
  restorePointId: string;
  digests: BlockDigests | null;
}

/**
 * What to read so that every block the newest point of `lineage` (oldest first) reads is compared
 * once: of each point, the blocks it wrote that no later point of the lineage overwrote. Read through
 * the newest point's view (its file with its backing chain), each is the data that point wrote.
 */
export function blocksToCheck(lineage: readonly DigestedPoint[]): { restorePointId: string; digests: BlockDigests }[] {
  const out: { restorePointId: string; digests: BlockDigests }[] = [];
  // newest first, each point minus what the points after it wrote: one pass, where subtracting every later point
  // from each point again grew with the square of a long chain
  let overwritten: Blocks[] = [];
  for (let i = lineage.length - 1; i >= 0; i--) {
    const point = lineage[i];
    if (!point.digests) continue;
    const visible = point.digests.minus(overwritten);
    if (visible.runs.length) out.unshift({ restorePointId: point.restorePointId, digests: visible });
    overwritten = unite(overwritten, point.digests.runs);
  }
  return out;
}

/**
 * The plan's blocks as few sets as one read covers (one per disk size the points recorded; a point's short
 * last block stays short), each with the point a block of it belongs to.
 */
export function readsOf(plan: readonly { restorePointId: string; digests: BlockDigests }[]): { digests: BlockDigests; pointOf(block: number): string }[] {
  const bySize = new Map<number, { restorePointId: string; digests: BlockDigests }[]>();
  for (const entry of plan) {
    const same = bySize.get(entry.digests.virtualSize);
    if (same) same.push(entry);
    else bySize.set(entry.digests.virtualSize, [entry]);
  }
  return [...bySize].map(([virtualSize, entries]) => ({
    // the points' visible blocks are disjoint: together they are one set
    digests: new BlockDigests(virtualSize, entries.flatMap((e) => e.digests.runs).sort((a, b) => a.first - b.first)),
    pointOf: (block: number) => entries.find((e) => e.digests.covers(block))!.restorePointId,
  }));
}

interface Blocks {
  first: number;
  count: number;
}

/** Two sorted lists of disjoint runs as one, touching runs joined. */
function unite(a: readonly Blocks[], b: readonly Blocks[]): Blocks[] {
  const out: Blocks[] = [];
  for (let i = 0, j = 0; i < a.length || j < b.length; ) {
    const next = j >= b.length || (i < a.length && a[i].first <= b[j].first) ? a[i++] : b[j++];
    const last = out.at(-1);
    if (last && next.first <= last.first + last.count) last.count = Math.max(last.count, next.first + next.count - last.first);
    else out.push({ first: next.first, count: next.count });
  }
  return out;
}

/**
 * The later points (chain order after the damaged one) that read `block` through it: up to the first
 * that wrote the block itself. A point without digests may or may not have: it counts as reading through.
 */
export function readsThrough(later: readonly DigestedPoint[], block: number): string[] {
  const out: string[] = [];
  for (const point of later) {
    if (point.digests?.covers(block)) break;
    out.push(point.restorePointId);
  }
  return out;
}

/** How much of a lineage's content has digests: a point whose chain has any point without them is not fully covered. */
export function coverageOf(lineages: readonly (readonly DigestedPoint[])[]): DigestCoverage {
  const points = lineages.flat();
  const digested = points.filter((p) => p.digests).length;
  if (points.length === 0 || digested === 0) return 'none';
  return digested === points.length ? 'all' : 'partial';
}
