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
  lineage.forEach((point, i) => {
    if (!point.digests) return;
    const overwritten = lineage.slice(i + 1).flatMap((later) => later.digests?.runs ?? []);
    const visible = point.digests.minus(overwritten);
    if (visible.runs.length) out.push({ restorePointId: point.restorePointId, digests: visible });
  });
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
