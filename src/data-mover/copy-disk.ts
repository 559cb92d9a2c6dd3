import { BASE_ALLOCATION, QEMU_ALLOCATION_DEPTH, QEMU_DIRTY_BITMAP_PREFIX } from '../nbd-protocol/constants';
import type { NbdClient } from '../nbd-protocol/nbd-client';
import { BlockDigests, DIGEST_BLOCK_SIZE, DIGEST_LENGTH, DigestRecorder, DigestRun, zeroDigest } from '../wire/block-digests';
import { BlockHasher, borrowHasher, releaseHasher, sharedBuffer } from './block-hasher';
import { alignPlan, CopyOp, CopyRequest, DEFAULT_CLUSTER_SIZE, dirtyRanges, layerRanges, planFull, planIncremental, splitRequests, sumBytes, widenRanges, withZeroGaps } from './copy-plan';

export interface CopyProgress {
  /** Bytes written or zeroed on the target so far. */
  bytesDone: number;
  bytesPlanned: number;
  /** Average bytes per second since the copy started. */
  rate: number;
  elapsedMs: number;
}

export type CopyMode = 'full' | 'incremental' | 'layer';

/**
 * What a copy reads from: an NBD export, or a reader that serves the same calls from elsewhere (a VMware
 * datastore file over HTTP), which offers no meta contexts and is copied by `ranges` or whole.
 */
export type CopySource = Pick<NbdClient, 'size' | 'blockSize' | 'maxPayload' | 'metaContexts' | 'isOpen' | 'read' | 'blockStatusAll'>;

export interface CopyDiskOptions {
  source: CopySource;
  target: NbdClient;
  /**
   * full: copy what base:allocation reports as data (zero extents skipped when
   * targetIsZero). incremental: exactly the clusters qemu:dirty-bitmap:BITMAP
   * marks dirty; zero ranges in them become WRITE_ZEROES. layer: the same, for
   * the clusters qemu:allocation-depth puts in the export's own file (depth 1),
   * into an overlay on a copy of its backing chain or a fresh image.
   */
  mode: CopyMode;
  /** Bitmap name (incremental): the source must have been opened with meta context qemu:dirty-bitmap:NAME and base:allocation. */
  bitmap?: string;
  /**
   * The source's own account of what to copy, instead of its meta contexts (VMware's changed block tracking):
   * incremental, the areas changed since the last point; full, the areas that hold data (the rest of a fresh
   * target reads as zeroes). Widened to clusters like dirty ranges; without base:allocation all of it is data.
   */
  ranges?: readonly { offset: number; length: number }[];
  /** Requests in flight (default 8). */
  requests?: number;
  /** Bytes per WRITE, and per READ unless `readSize` is smaller (default 4 MiB; capped by both servers' maximum payload). */
  requestSize?: number;
  /** Bytes per READ at most (default DEFAULT_READ_SIZE): a request is read in pieces of this size, sent together. */
  readSize?: number;
  signal?: AbortSignal;
  onProgress?: (progress: CopyProgress) => void;
  /** Minimum time between progress reports (default 250 ms); a final report always follows completion. */
  progressIntervalMs?: number;
  /** Reads no faster than this many bytes per second on average (an operator's throttle); zero ranges are not counted. */
  maxBytesPerSecond?: number;
  /** Full mode: the target is freshly created and reads as zeroes, so zero extents need no writes (default true). */
  targetIsZero?: boolean;
  /** Granularity the dirty (or layer) ranges are widened to (default 64 KiB, a dirty bitmap's and a qcow2 cluster's). */
  clusterSize?: number;
  /**
   * Hash every block the copy writes (data or zeroes) into `CopySummary.digests`. The plan is then
   * aligned to whole digest blocks, so each digest describes a block the target now holds entirely.
   */
  digests?: boolean;
  /**
   * Full mode with `digests`: the digest of every block the target already holds (a chunk point started from a base
   * the hub chose). A block is hashed before it is sent and not sent when the target holds the same bytes there; a
   * zero range is zeroed only where the target holds data. Everything the source does not hold is zeroed, as for a
   * target that does not read as zeroes. A block `known` does not cover is sent.
   */
  known?: BlockDigests;
}

export interface CopySummary {
  mode: CopyMode;
  /** Bytes the plan writes or zeroes on the target. */
  bytesPlanned: number;
  bytesRead: number;
  bytesWritten: number;
  bytesZeroed: number;
  /** With `known`: bytes of the plan neither sent nor zeroed because the target held them already. */
  bytesKnown: number;
  /** Planned operations (runs of data or zeroes) after alignment and merging. */
  extents: number;
  /** NBD READ/WRITE/WRITE_ZEROES requests issued by the copy. */
  requests: number;
  /** Incremental: bytes the bitmap marks dirty; layer: bytes the export's own file holds; both widened to clusters. */
  dirtyBytes?: number;
  durationMs: number;
  /** With `digests`: the digests of every block written (the short last block of the disk included). */
  digests?: BlockDigests;
}

/** Rejection of an aborted copy (name AbortError, code ABORT_ERR like Node's own). */
export class CopyAbortedError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(reason?: unknown) {
    super(`copy aborted${reason instanceof Error ? `: ${reason.message}` : reason !== undefined ? `: ${String(reason)}` : ''}`, { cause: reason });
    this.name = 'AbortError';
  }
}

/**
 * 8 requests of 4 MiB: against the qemu-nbd we start (QEMU_NBD_ENV), with TLS and digests, the copy's
 * three processes spent 12 % less CPU per GiB than with 16 of 512 KiB, and 19 % less without either
 * (the runs are in the git history of docs/benchmarks.md): fewer requests, TLS records encrypted and
 * read back in longer runs, fewer hand-offs to the hasher.
 */
export const DEFAULT_REQUESTS = 8;
export const DEFAULT_REQUEST_SIZE = 4 * 1024 * 1024;
/**
 * Reads go in pieces of 512 KiB, sent together, whatever the request size. A qemu running with glibc's malloc
 * defaults (a running domain's own qemu, started by libvirt; any qemu-nbd an operator starts for `sendense nbd
 * copy`) maps and faults in a fresh buffer for every request of 1 MiB and more (one munmap per request under
 * strace), costing it ~60 % more CPU than requests of 512 KiB. With whole 4 MiB reads `sendense nbd copy` between
 * two such qemu-nbd fell to 0.66 of nbdcopy, which reads 256 KiB; the qemu-nbd we start (QEMU_NBD_ENV) keeps its
 * buffers and serves either size at the same cost (docs/benchmarks.md, datapath).
 */
export const DEFAULT_READ_SIZE = 512 * 1024;
const ZERO_REQUEST_SIZE = 256 * 1024 * 1024;

function lcmPow2(...values: number[]): number {
  return values.reduce((a, b) => Math.max(a, b), 1);
}

/** Plans the copy from the source's meta contexts. */
export async function planCopy(options: CopyDiskOptions): Promise<{ ops: CopyOp[]; dirtyBytes?: number; align: number }> {
  const { source, target } = options;
  const size = source.size;
  const align = lcmPow2(source.blockSize.minimum, target.blockSize.minimum, options.digests ? DIGEST_BLOCK_SIZE : 1);
  if (options.ranges) {
    const cluster = Math.max(options.clusterSize ?? DEFAULT_CLUSTER_SIZE, align);
    const wanted = widenRanges(options.ranges, cluster, size);
    const allocation = source.metaContexts.has(BASE_ALLOCATION) ? (await source.blockStatusAll(0, size, [BASE_ALLOCATION])).get(BASE_ALLOCATION)! : [{ offset: 0, length: size, flags: 0 }];
    const ops = alignPlan(planIncremental(wanted, allocation), align, size);
    // a full from the source's own account of its data: the rest reads as zeroes, which a target holding a disk does not
    return { ops: options.known ? withZeroGaps(ops, size) : ops, dirtyBytes: sumBytes(wanted), align };
  }
  if (options.mode === 'full') {
    if (!source.metaContexts.has(BASE_ALLOCATION)) {
      // Without allocation information every byte is data.
      return { ops: size ? [{ kind: 'data', offset: 0, length: size }] : [], align };
    }
    const map = await source.blockStatusAll(0, size, [BASE_ALLOCATION]);
    const ops = planFull(map.get(BASE_ALLOCATION)!, options.targetIsZero !== false && !options.known);
    return { ops: alignPlan(ops, align, size), align };
  }
  const cluster = Math.max(options.clusterSize ?? DEFAULT_CLUSTER_SIZE, align);
  const rangesContext = options.mode === 'layer' ? QEMU_ALLOCATION_DEPTH : QEMU_DIRTY_BITMAP_PREFIX + options.bitmap;
  const map = await source.blockStatusAll(0, size, [rangesContext, BASE_ALLOCATION]);
  const dirty = (options.mode === 'layer' ? layerRanges : dirtyRanges)(map.get(rangesContext)!, cluster, size);
  const ops = alignPlan(planIncremental(dirty, map.get(BASE_ALLOCATION)!), align, size);
  return { ops, dirtyBytes: sumBytes(dirty), align };
}

function validate(options: CopyDiskOptions): void {
  const { source, target, mode } = options;
  if (mode !== 'full' && mode !== 'incremental' && mode !== 'layer') throw new TypeError(`mode must be 'full', 'incremental' or 'layer', not ${JSON.stringify(mode)}`);
  if (options.known) {
    if (mode !== 'full' || !options.digests) throw new TypeError('a copy onto what the target holds (known) is a full copy with digests');
    if (options.known.virtualSize !== source.size) throw new RangeError(`the target's known digests describe a ${options.known.virtualSize}-byte disk, the source has ${source.size} bytes`);
  }
  if (!source.isOpen) throw new Error('source NBD connection is not open');
  if (!target.isOpen) throw new Error('target NBD connection is not open');
  if (target.readOnly) throw new Error(`target export "${target.exportName}" is read-only`);
  if (target.size < source.size) throw new Error(`target export is smaller (${target.size} bytes) than the source (${source.size} bytes)`);
  if (options.ranges) {
    if (mode === 'layer') throw new TypeError('a layer copy takes its ranges from qemu:allocation-depth, not from the caller');
    let end = 0;
    for (const r of options.ranges) {
      if (!Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length) || r.offset < end || r.length < 1 || r.offset + r.length > source.size) {
        throw new RangeError(`copy ranges must be sorted, disjoint and within the source's ${source.size} bytes; ${r.offset}+${r.length} is not`);
      }
      end = r.offset + r.length;
    }
    if (mode === 'incremental' && !target.canWriteZeroes) throw new Error('target does not support WRITE_ZEROES, which an incremental copy needs for zeroed ranges');
  } else if (mode === 'incremental') {
    if (!options.bitmap) throw new TypeError('incremental copy needs a bitmap name');
    const ctx = QEMU_DIRTY_BITMAP_PREFIX + options.bitmap;
    if (!source.metaContexts.has(ctx)) throw new Error(`source connection has no meta context ${ctx}: open it with metaContexts ['${ctx}', '${BASE_ALLOCATION}']`);
    if (!source.metaContexts.has(BASE_ALLOCATION)) throw new Error(`incremental copy needs meta context ${BASE_ALLOCATION} on the source connection as well`);
    if (!target.canWriteZeroes) throw new Error('target does not support WRITE_ZEROES, which an incremental copy needs for zeroed ranges');
  }
  if (mode === 'layer') {
    if (!source.metaContexts.has(QEMU_ALLOCATION_DEPTH)) {
      throw new Error(`source connection has no meta context ${QEMU_ALLOCATION_DEPTH} (qemu-nbd needs -A): open it with metaContexts ['${QEMU_ALLOCATION_DEPTH}', '${BASE_ALLOCATION}']`);
    }
    if (!source.metaContexts.has(BASE_ALLOCATION)) throw new Error(`layer copy needs meta context ${BASE_ALLOCATION} on the source connection as well`);
    if (!target.canWriteZeroes) throw new Error('target does not support WRITE_ZEROES, which a layer copy needs for zeroed ranges');
  }
  const requests = options.requests ?? DEFAULT_REQUESTS;
  if (!Number.isInteger(requests) || requests < 1 || requests > 1024) throw new RangeError(`requests must be an integer from 1 to 1024, not ${requests}`);
  const requestSize = options.requestSize ?? DEFAULT_REQUEST_SIZE;
  if (!Number.isInteger(requestSize) || requestSize < 4096) throw new RangeError(`requestSize must be an integer of at least 4096 bytes, not ${requestSize}`);
  const limit = options.maxBytesPerSecond;
  if (limit !== undefined && (!Number.isFinite(limit) || limit < 1)) throw new RangeError(`maxBytesPerSecond must be a positive number, not ${limit}`);
  if (options.readSize !== undefined && (!Number.isInteger(options.readSize) || options.readSize < 4096)) {
    throw new RangeError(`readSize must be an integer of at least 4096 bytes, not ${options.readSize}`);
  }
  if (options.digests && Math.min(requestSize, source.maxPayload, target.maxPayload) < DIGEST_BLOCK_SIZE) {
    throw new RangeError(`a copy with digests needs requests of at least ${DIGEST_BLOCK_SIZE} bytes`);
  }
}

/** The runs of blocks within `offset`+`length` (digest-aligned) for which `same` is false: what the copy must still write. */
function unlike(known: BlockDigests, offset: number, length: number, same: (block: number, blockLength: number) => boolean): { offset: number; length: number }[] {
  const out: { offset: number; length: number }[] = [];
  const end = offset + length;
  for (let at = offset; at < end; at += DIGEST_BLOCK_SIZE) {
    const take = Math.min(DIGEST_BLOCK_SIZE, end - at);
    if (same(at / DIGEST_BLOCK_SIZE, known.blockLength(at / DIGEST_BLOCK_SIZE))) continue;
    const last = out.at(-1);
    if (last && last.offset + last.length === at) last.length += take;
    else out.push({ offset: at, length: take });
  }
  return out;
}

/** Requests of the plan in order; with a recorder, each carries the digest run of its operation. */
function* requestsOf(ops: readonly CopyOp[], requestSize: number, recorder: DigestRecorder | null): Generator<CopyRequest & { run: DigestRun | null }> {
  for (const op of ops) {
    const run = recorder ? recorder.add(op.offset, op.length, op.kind === 'zero') : null;
    for (const request of splitRequests([op], requestSize, ZERO_REQUEST_SIZE)) yield { ...request, run };
  }
}

/** Effective request size: within both servers' maxima, a multiple of both preferred sizes where possible. */
export function effectiveRequestSize(requested: number, source: CopySource, target: NbdClient): number {
  return fitRequest(requested, [source, target]);
}

/** `requested` within every server's maximum payload, a multiple of their preferred and minimum block sizes where possible. */
function fitRequest(requested: number, servers: readonly Pick<NbdClient, 'maxPayload' | 'blockSize'>[]): number {
  let size = Math.min(requested, ...servers.map((s) => s.maxPayload));
  const preferred = Math.max(...servers.flatMap((s) => [s.blockSize.preferred, s.blockSize.minimum]));
  if (size >= preferred) size -= size % preferred;
  const min = Math.max(...servers.map((s) => s.blockSize.minimum));
  size -= size % min;
  return Math.max(size, min);
}

/**
 * Copies a disk between two NBD exports with `requests` READ->WRITE pipelines
 * in flight, then flushes the target. Never trims: zero ranges are written
 * with WRITE_ZEROES so an overlay masks its backing file.
 */
export async function copyDisk(options: CopyDiskOptions): Promise<CopySummary> {
  const started = Date.now();
  validate(options);
  const { source, target, signal } = options;
  if (signal?.aborted) throw new CopyAbortedError(signal.reason);

  let stop = false;
  let abortReject: ((e: Error) => void) | undefined;
  const aborted = new Promise<never>((_, reject) => (abortReject = reject));
  aborted.catch(() => undefined);
  const onAbort = () => {
    stop = true;
    abortReject?.(new CopyAbortedError(signal?.reason));
  };
  signal?.addEventListener('abort', onAbort, { once: true });

  let timer: NodeJS.Timeout | undefined;
  let hasher: BlockHasher | undefined;
  try {
    const { ops, dirtyBytes } = await Promise.race([planCopy(options), aborted]);
    const bytesPlanned = sumBytes(ops);
    let requestSize = effectiveRequestSize(options.requestSize ?? DEFAULT_REQUEST_SIZE, source, target);
    // whole digest blocks per request, so each block is hashed from one read
    if (options.digests) requestSize -= requestSize % DIGEST_BLOCK_SIZE;
    const readSize = fitRequest(Math.min(options.readSize ?? DEFAULT_READ_SIZE, requestSize), [source]);
    const inFlight = options.requests ?? DEFAULT_REQUESTS;
    const recorder = options.digests ? new DigestRecorder(source.size) : null;
    if (recorder) hasher = borrowHasher();
    const queue = requestsOf(ops, requestSize, recorder);

    const stats = { bytesRead: 0, bytesWritten: 0, bytesZeroed: 0, bytesKnown: 0, requests: 0 };
    const known = options.known ?? null;
    let firstError: Error | undefined;
    let failReject: ((e: Error) => void) | undefined;
    const failed = new Promise<never>((_, reject) => (failReject = reject));
    failed.catch(() => undefined);
    const fail = (error: unknown) => {
      stop = true;
      if (firstError) return;
      firstError = error instanceof Error ? error : new Error(String(error));
      failReject?.(firstError);
    };
    const report = () => {
      const elapsedMs = Date.now() - started;
      const bytesDone = stats.bytesWritten + stats.bytesZeroed + stats.bytesKnown;
      try {
        options.onProgress?.({ bytesDone, bytesPlanned, rate: elapsedMs > 0 ? (bytesDone * 1000) / elapsedMs : 0, elapsedMs });
      } catch (error) {
        // a throwing callback fails the copy instead of escaping from a timer
        fail(error);
      }
    };
    if (options.onProgress) {
      // At once, with nothing done yet: a watcher learns the plan when the transfer starts, not a tick later.
      report();
      timer = setInterval(report, options.progressIntervalMs ?? 250);
      timer.unref();
    }

    // each data request waits for its turn on the throttle's schedule before it is read
    let scheduled = 0;
    const throttle = async (length: number) => {
      const limit = options.maxBytesPerSecond;
      if (!limit) return;
      const due = started + (scheduled / limit) * 1000;
      scheduled += length;
      while (!stop && Date.now() < due) await new Promise((r) => setTimeout(r, Math.min(250, due - Date.now())));
    };

    // A buffer is made when its worker first reads, no larger than all there is to read: a small incremental
    // allocates (and zeroes, for the hasher's shared memory) 1 MiB where every worker used to take requestSize.
    const dataBytes = ops.reduce((n, op) => (op.kind === 'data' ? n + op.length : n), 0);
    const bufferBytes = Math.min(requestSize, dataBytes);
    const worker = async () => {
      let buffer: Buffer | undefined;
      for (;;) {
        if (stop) return;
        const next = queue.next();
        if (next.done) return;
        const req = next.value;
        stats.requests++;
        if (req.kind === 'zero' && known) {
          const zeroed = unlike(known, req.offset, req.length, (block, length) => known.digestAt(block)?.equals(zeroDigest(length)) ?? false);
          for (const r of zeroed) await target.writeZeroes(r.offset, r.length);
          const bytes = sumBytes(zeroed);
          stats.bytesZeroed += bytes;
          stats.bytesKnown += req.length - bytes;
        } else if (req.kind === 'zero') {
          await target.writeZeroes(req.offset, req.length);
          stats.bytesZeroed += req.length;
        } else if (known) {
          await throttle(req.length);
          if (stop) return;
          buffer ??= sharedBuffer(bufferBytes);
          const data = await source.read(req.offset, req.length, buffer, readSize);
          stats.bytesRead += req.length;
          if (stop) return;
          // hashed before it is sent: only what differs from the target's block crosses the wire
          await hasher!.hashInto(req.run!, req.offset, data);
          const run = req.run!;
          const sent = unlike(known, req.offset, req.length, (block) => {
            const at = (block - run.first) * DIGEST_LENGTH;
            return known.digestAt(block)?.equals(run.digests!.subarray(at, at + DIGEST_LENGTH)) ?? false;
          });
          await Promise.all(sent.map((r) => target.write(r.offset, data.subarray(r.offset - req.offset, r.offset - req.offset + r.length))));
          const bytes = sumBytes(sent);
          stats.bytesWritten += bytes;
          stats.bytesKnown += req.length - bytes;
        } else {
          await throttle(req.length);
          if (stop) return;
          buffer ??= hasher ? sharedBuffer(bufferBytes) : Buffer.allocUnsafe(bufferBytes);
          const data = await source.read(req.offset, req.length, buffer, readSize);
          stats.bytesRead += req.length;
          if (stop) return;
          // hashing (on the hasher's thread) overlaps the write: both only read the buffer, and it is reused only after both
          const written = target.write(req.offset, data);
          const hashed = req.run && hasher ? hasher.hashInto(req.run, req.offset, data) : undefined;
          await Promise.all([written, hashed]);
          stats.bytesWritten += req.length;
        }
      }
    };
    const workers: Promise<void>[] = [];
    for (let i = 0; i < inFlight; i++) workers.push(worker().catch(fail));
    // the first error or an abort ends the copy at once; requests still in flight settle unobserved
    await Promise.race([Promise.all(workers), aborted, failed]);
    if (firstError) throw firstError;
    await Promise.race([target.flush(), aborted]);
    if (timer) clearInterval(timer);
    timer = undefined;
    report();
    if (firstError) throw firstError;
    return {
      mode: options.mode,
      bytesPlanned,
      bytesRead: stats.bytesRead,
      bytesWritten: stats.bytesWritten,
      bytesZeroed: stats.bytesZeroed,
      bytesKnown: stats.bytesKnown,
      extents: ops.length,
      requests: stats.requests,
      ...(dirtyBytes !== undefined ? { dirtyBytes } : {}),
      durationMs: Date.now() - started,
      ...(recorder ? { digests: recorder.result() } : {}),
    };
  } finally {
    if (timer) clearInterval(timer);
    if (hasher) await releaseHasher(hasher);
    signal?.removeEventListener('abort', onAbort);
  }
}
