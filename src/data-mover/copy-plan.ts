import { ALLOCATION_DEPTH_TOP, NBD_STATE_DIRTY, NBD_STATE_ZERO } from '../nbd-protocol/constants';
import type { Extent } from '../nbd-protocol/nbd-client';

/** One planned operation on the target: copy data from the source, or write zeroes. */
export interface CopyOp {
  kind: 'data' | 'zero';
  offset: number;
  length: number;
}

/** One NBD request of the copy. */
export type CopyRequest = CopyOp;

export const DEFAULT_CLUSTER_SIZE = 64 * 1024;

function floorTo(n: number, align: number): number {
  return n - (n % align);
}

function ceilTo(n: number, align: number, size: number): number {
  const r = n % align;
  return Math.min(r === 0 ? n : n + align - r, size);
}

/**
 * Full copy: data extents of base:allocation are copied; extents the source
 * reports as zero (NBD_STATE_ZERO, with or without HOLE) are skipped when the
 * target is known to read as zeroes, otherwise zeroed. A HOLE without ZERO may
 * read non-zero (e.g. through a backing file), so it counts as data.
 */
export function planFull(allocation: readonly Extent[], targetIsZero: boolean): CopyOp[] {
  const ops: CopyOp[] = [];
  for (const e of allocation) {
    const kind = e.flags & NBD_STATE_ZERO ? 'zero' : 'data';
    if (kind === 'zero' && targetIsZero) continue;
    pushMerged(ops, { kind, offset: e.offset, length: e.length });
  }
  return ops;
}

/** Dirty ranges of a qemu:dirty-bitmap context, widened to whole clusters, clamped to the export and merged. */
export function dirtyRanges(bitmap: readonly Extent[], clusterSize: number, size: number): { offset: number; length: number }[] {
  return widenedRanges(bitmap, (flags) => (flags & NBD_STATE_DIRTY) !== 0, clusterSize, size);
}

/**
 * The ranges the export's own file holds, from its qemu:allocation-depth context (depth exactly 1), widened,
 * clamped and merged like dirtyRanges. Depth 0 is unallocated and 2 or more belongs to a backing file: the
 * target is an overlay on a copy of that backing chain (or a fresh image), so neither is copied.
 */
export function layerRanges(depth: readonly Extent[], clusterSize: number, size: number): { offset: number; length: number }[] {
  return widenedRanges(depth, (flags) => flags === ALLOCATION_DEPTH_TOP, clusterSize, size);
}

/** Ranges a source named itself (sorted, disjoint), widened to whole clusters, clamped to the export and merged. */
export function widenRanges(ranges: readonly { offset: number; length: number }[], clusterSize: number, size: number): { offset: number; length: number }[] {
  return widenedRanges(ranges.map((r) => ({ ...r, flags: 1 })), () => true, clusterSize, size);
}

function widenedRanges(extents: readonly Extent[], keep: (flags: number) => boolean, clusterSize: number, size: number): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  for (const e of extents) {
    if (!keep(e.flags)) continue;
    const start = floorTo(e.offset, clusterSize);
    const end = ceilTo(e.offset + e.length, clusterSize, size);
    if (end <= start) continue;
    const prev = out[out.length - 1];
    if (prev && prev.offset + prev.length >= start) prev.length = Math.max(prev.offset + prev.length, end) - prev.offset;
    else out.push({ offset: start, length: end - start });
  }
  return out;
}

/**
 * Incremental and layer copy: within each dirty range, what base:allocation reports as
 * zero is written as zeroes (WRITE_ZEROES, never TRIM) and everything else is copied.
 */
export function planIncremental(dirty: readonly { offset: number; length: number }[], allocation: readonly Extent[]): CopyOp[] {
  const ops: CopyOp[] = [];
  let i = 0;
  for (const d of dirty) {
    const dEnd = d.offset + d.length;
    while (i < allocation.length && allocation[i].offset + allocation[i].length <= d.offset) i++;
    let pos = d.offset;
    for (let j = i; pos < dEnd; j++) {
      const a = allocation[j];
      if (!a || a.offset > pos) throw new Error(`allocation map does not cover ${pos} (dirty range ${d.offset}+${d.length})`);
      const end = Math.min(a.offset + a.length, dEnd);
      if (end > pos) pushMerged(ops, { kind: a.flags & NBD_STATE_ZERO ? 'zero' : 'data', offset: pos, length: end - pos });
      pos = Math.max(pos, end);
    }
  }
  return ops;
}

/**
 * Makes every operation start and end on `align` (except at the export end):
 * data widens outward, zero ranges shrink inward and hand their ragged edges
 * to data, and where the two meet data wins. Input sorted and disjoint.
 */
export function alignPlan(ops: readonly CopyOp[], align: number, size: number): CopyOp[] {
  if (align <= 1) return ops.slice();
  const emitted: CopyOp[] = [];
  const emit = (kind: CopyOp['kind'], start: number, end: number) => {
    if (end > start) emitted.push({ kind, offset: start, length: end - start });
  };
  for (const op of ops) {
    const s = op.offset;
    const e = op.offset + op.length;
    if (op.kind === 'data') {
      emit('data', floorTo(s, align), ceilTo(e, align, size));
    } else {
      const zs = ceilTo(s, align, size);
      const ze = e === size ? size : floorTo(e, align);
      if (zs >= ze) {
        emit('data', floorTo(s, align), ceilTo(e, align, size));
        continue;
      }
      if (s < zs) emit('data', floorTo(s, align), zs);
      emit('zero', zs, ze);
      if (ze < e) emit('data', ze, ceilTo(e, align, size));
    }
  }
  const out: CopyOp[] = [];
  for (const op of emitted) {
    const last = out[out.length - 1];
    const lastEnd = last ? last.offset + last.length : 0;
    if (!last || op.offset > lastEnd || (op.offset === lastEnd && op.kind !== last.kind)) {
      out.push({ ...op });
      continue;
    }
    const opEnd = op.offset + op.length;
    if (op.kind === last.kind) {
      last.length = Math.max(lastEnd, opEnd) - last.offset;
    } else if (op.kind === 'data') {
      // data overlapping the tail of a zero range: cut the zero range back
      last.length = op.offset - last.offset;
      if (last.length <= 0) out.pop();
      pushMerged(out, { ...op });
    } else if (opEnd > lastEnd) {
      out.push({ kind: 'zero', offset: lastEnd, length: opEnd - lastEnd });
    }
  }
  return out;
}

/**
 * A full plan for a target that already holds a disk (a chunk point started from a base): what the plan leaves out
 * reads as zeroes at the source, so it becomes zero operations the copy must not skip on trust.
 */
export function withZeroGaps(ops: readonly CopyOp[], size: number): CopyOp[] {
  const out: CopyOp[] = [];
  let at = 0;
  for (const op of ops) {
    if (op.offset > at) pushMerged(out, { kind: 'zero', offset: at, length: op.offset - at });
    pushMerged(out, { ...op });
    at = op.offset + op.length;
  }
  if (at < size) pushMerged(out, { kind: 'zero', offset: at, length: size - at });
  return out;
}

/**
 * Cuts operations into requests: data at multiples of requestSize (so requests
 * stay aligned to target clusters), zeroes at multiples of zeroSize.
 */
export function* splitRequests(ops: readonly CopyOp[], requestSize: number, zeroSize: number): Generator<CopyRequest> {
  for (const op of ops) {
    const step = op.kind === 'data' ? requestSize : zeroSize;
    const end = op.offset + op.length;
    let pos = op.offset;
    while (pos < end) {
      const next = Math.min(end, floorTo(pos, step) + step);
      yield { kind: op.kind, offset: pos, length: next - pos };
      pos = next;
    }
  }
}

export function sumBytes(ops: readonly { length: number }[], kind?: CopyOp['kind']): number {
  let n = 0;
  for (const op of ops) if (!kind || (op as CopyOp).kind === kind) n += op.length;
  return n;
}

function pushMerged(ops: CopyOp[], op: CopyOp): void {
  const last = ops[ops.length - 1];
  if (last && last.kind === op.kind && last.offset + last.length === op.offset) last.length += op.length;
  else ops.push(op);
}
