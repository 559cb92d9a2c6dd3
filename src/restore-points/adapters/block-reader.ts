import { join } from 'node:path';
import { borrowHasher, releaseHasher, sharedBuffer } from '../../data-mover';
import { NbdClient } from '../../nbd-protocol/nbd-client';
import { NbdCommandError } from '../../nbd-protocol/errors';
import { openNbd } from '../../nbd-protocol/open-nbd';
import { terminateProcess } from '../../process/child-process';
import { makeWorkDir, removeWorkDir } from '../../process/work-area';
import { supportsDirectIo } from '../../qemu/qemu-nbd-args';
import { ChunkFormatError } from '../../repositories/chunks/chunk-format';
import { openChunkPoint, socketExportLaunch, socketWriterLaunch } from '../../repositories/chunks/point-server';
import { launchQemuNbd } from '../../qemu/qemu-nbd-launcher';
import { Qcow2ChainView } from '../../repositories/qcow2/chain-view';
import { BlockDigests, DIGEST_BLOCK_SIZE, DIGEST_LENGTH, DigestRecorder } from '../../wire/block-digests';

const EXPORT_NAME = 'verify';
/**
 * Verify reads like the backup copies: 8 requests of 4 MiB in flight (src/data-mover/copy-disk.ts), each
 * hashed on the hasher's thread while the next reads arrive (docs/benchmarks.md, verify).
 */
export const VERIFY_REQUESTS = 8;
export const VERIFY_REQUEST_SIZE = 64 * DIGEST_BLOCK_SIZE;

/** How a mismatch's `actual` begins when the block was not read at all (the source refused it), followed by why. */
export const UNREADABLE = 'cannot be read: ';

export interface BlockMismatch {
  offset: number;
  length: number;
  expected: string;
  actual: string;
}

export interface ReadCheck {
  bytesRead: number;
  blocks: number;
  mismatches: BlockMismatch[];
}

/** One point's file exported read-only with its backing chain: what a restore of that point would read. */
export interface PointExport {
  client: NbdClient;
  close(): Promise<void>;
}

/** What checkBlocks reads from: an NBD client, or the hub's own view of a chain. */
export interface BlockSource {
  readonly size: number;
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
}

/** One point's file with its backing chain, read as a restore of it reads. */
export interface PointReader {
  source: BlockSource;
  close(): Promise<void>;
}

/**
 * A chunk point read in this process through its index; a point's chain read through the hub's own resolution of it (Qcow2ChainView), which costs the same at any depth
 * where qemu walks every file above the one holding a block; a chain with a layout that view does not resolve (an
 * encrypted repository, compressed clusters) is read through a read-only qemu-nbd export, as before.
 */
export async function openPoint(file: string, area: string, readyTimeoutMs = 10_000): Promise<PointReader> {
  const chunks = await openChunkPoint(file);
  if (chunks) return { source: chunks, close: () => chunks.close() };
  const view = await Qcow2ChainView.open(file);
  if (view) return { source: view, close: () => view.close() };
  const exported = await exportPoint(file, area, readyTimeoutMs);
  return { source: exported.client, close: exported.close };
}

/**
 * A read-only qemu-nbd on a Unix socket in a private directory of the work area `area` (cleared when the hub
 * starts: a hub killed meanwhile leaves nothing running): no port to lease, nothing outside the host can reach it,
 * and its shared image locks make a writer or a merge on any file of the chain fail instead of changing what is
 * being read.
 */
export function exportPoint(file: string, area: string, readyTimeoutMs = 10_000): Promise<PointExport> {
  return exportFile(file, area, false, readyTimeoutMs);
}

/**
 * The same for a new point's file being written (a sync's copy): written once and not read back soon, so around the
 * page cache where the filesystem allows it, as a backup target is (see buildQemuNbdArgs).
 */
export function exportForWriting(file: string, area: string, readyTimeoutMs = 10_000): Promise<PointExport> {
  return exportFile(file, area, true, readyTimeoutMs);
}

/**
 * A new chunk point being written (a sync's copy into a chunks repository), started from `create.base`: closing the
 * export commits the point, as a backup target's stop does.
 */
export function exportChunkPointForWriting(file: string, create: { size: number; base: string | null }, area: string, readyTimeoutMs = 10_000): Promise<PointExport> {
  return exportFile(file, area, true, readyTimeoutMs, (socket, pidFile) => socketWriterLaunch(file, create, socket, EXPORT_NAME, pidFile));
}

type Launch = (socket: string, pidFile: string) => { binary?: string; args: string[] };

async function exportFile(file: string, area: string, writable: boolean, readyTimeoutMs: number, launchOf?: Launch): Promise<PointExport> {
  const dir = await makeWorkDir(area);
  const socket = join(dir, 'nbd.sock');
  const pidFile = join(dir, 'qemu-nbd.pid');
  let handle;
  try {
    const launch = launchOf ? launchOf(socket, pidFile) : socketExportLaunch({ file, format: 'qcow2', socket, exportName: EXPORT_NAME, shared: 1, ...(writable ? { writable: { directIo: supportsDirectIo(file) } } : {}) }, pidFile);
    handle = await launchQemuNbd({ ...launch, pidFile, listen: { socket }, logFile: join(dir, 'qemu-nbd.log'), detached: false }, { readyTimeoutMs });
    const client = await openNbd(`nbd+unix:///${EXPORT_NAME}?socket=${socket}`);
    const server = handle;
    return {
      client,
      close: async () => {
        await client.close().catch(() => undefined);
        // a writer flushes on SIGTERM (a chunk point's is committed then): it is given the time to, not killed midway
        await terminateProcess(server, writable ? 60_000 : 5_000, `qemu-nbd verify export of ${file}`);
        await removeWorkDir(dir);
      },
    };
  } catch (error) {
    if (handle) await terminateProcess(handle, 5_000, `qemu-nbd verify export of ${file}`);
    await removeWorkDir(dir);
    throw error;
  }
}

export interface CheckOptions {
  /** Told of every read as it completes. */
  onBytes?: (bytes: number) => void;
  requests?: number;
  /** Bytes per READ: whole digest blocks. */
  requestSize?: number;
}

/**
 * Reads every block of `digests` through `client` with many requests in flight, hashes each block
 * and compares it with its recorded digest.
 */
export async function checkBlocks(client: BlockSource, digests: BlockDigests, options: CheckOptions = {}): Promise<ReadCheck> {
  const { onBytes = () => undefined, requests: inFlight = VERIFY_REQUESTS, requestSize = VERIFY_REQUEST_SIZE } = options;
  if (!Number.isInteger(inFlight) || inFlight < 1) throw new RangeError(`requests must be a positive integer, got ${inFlight}`);
  if (!Number.isInteger(requestSize / DIGEST_BLOCK_SIZE) || requestSize < DIGEST_BLOCK_SIZE) throw new RangeError(`requestSize must be whole blocks of ${DIGEST_BLOCK_SIZE} bytes, got ${requestSize}`);
  const result: ReadCheck = { bytesRead: 0, blocks: 0, mismatches: [] };
  const size = Math.min(digests.virtualSize, client.size);
  const end = (b: number) => b * DIGEST_BLOCK_SIZE + digests.blockLength(b);
  // The image may be shorter than the disk the digests describe: a block it does not wholly hold is not read. Blocks
  // are in order, so those are the last ones, and so is the disk's short last block, which the hasher hashes as such.
  const all = packRequests(digests.runs, requestSize / DIGEST_BLOCK_SIZE, (b) => end(b) <= size);
  for (const b of all.beyond) result.mismatches.push({ offset: b * DIGEST_BLOCK_SIZE, length: digests.blockLength(b), expected: digests.digestAt(b)!.toString('hex'), actual: 'beyond the end of the image' });
  const queue = all.requests.values();
  // No more readers, and no larger buffers, than the reads need (a verify of a long chain reads a few blocks of each point).
  const bufferSize = all.requests.reduce((most, r) => Math.max(most, r.blocks), 0) * DIGEST_BLOCK_SIZE;
  const hasher = borrowHasher();
  const worker = async () => {
    const buffer = sharedBuffer(bufferSize);
    for (let next = queue.next(); !next.done; next = queue.next()) {
      const { pieces } = next.value;
      // the pieces of a request side by side in one buffer, hashed in one hand-off to the hasher's thread
      let length = 0;
      const placed = pieces.map(({ first, count }) => {
        const offset = first * DIGEST_BLOCK_SIZE;
        const bytes = end(first + count - 1) - offset;
        const at = length;
        length += bytes;
        return { first, count, at, read: client.read(offset, bytes, buffer.subarray(at, at + bytes)) };
      });
      const settled = await Promise.allSettled(placed.map((p) => p.read));
      // blocks whose data the source refused to give (damage it found): each is the point's corruption, not the
      // verify's failure; they are read again one by one, so that one bad chunk condemns only its own block
      const unreadable = new Map<number, string>();
      for (const [i, outcome] of settled.entries()) {
        if (outcome.status === 'fulfilled') continue;
        if (!isDamage(outcome.reason)) throw outcome.reason;
        const { first, count, at } = placed[i];
        for (let b = first; b < first + count; b++) {
          const within = at + (b - first) * DIGEST_BLOCK_SIZE;
          await client.read(b * DIGEST_BLOCK_SIZE, digests.blockLength(b), buffer.subarray(within, within + digests.blockLength(b))).catch((error: unknown) => {
            if (!isDamage(error)) throw error;
            unreadable.set(b, `${UNREADABLE}${(error as Error).message}`);
          });
        }
      }
      result.bytesRead += length;
      onBytes(length);
      const hashed = await hasher.hash(buffer.subarray(0, length));
      let k = 0;
      for (const { first, count } of pieces) {
        for (let b = first; b < first + count; b++, k++) {
          const actual = hashed.subarray(k * DIGEST_LENGTH, (k + 1) * DIGEST_LENGTH);
          const expected = digests.digestAt(b)!;
          result.blocks++;
          const refused = unreadable.get(b);
          if (refused !== undefined || !actual.equals(expected)) result.mismatches.push({ offset: b * DIGEST_BLOCK_SIZE, length: digests.blockLength(b), expected: expected.toString('hex'), actual: refused ?? actual.toString('hex') });
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(inFlight, all.requests.length) }, worker));
  } finally {
    await releaseHasher(hasher);
  }
  result.mismatches.sort((a, b) => a.offset - b.offset);
  return result;
}

interface Piece {
  first: number;
  count: number;
}

/** The digest of every block of a disk, read whole from `source` (zeros included): digests that name all it holds. */
export async function hashWholeDisk(source: BlockSource): Promise<BlockDigests> {
  const recorder = new DigestRecorder(source.size);
  const run = recorder.add(0, source.size, false);
  const buffer = Buffer.alloc(VERIFY_REQUEST_SIZE);
  for (let offset = 0; offset < source.size; offset += buffer.length) {
    const length = Math.min(buffer.length, source.size - offset);
    DigestRecorder.hashInto(run, offset, await source.read(offset, length, buffer.subarray(0, length)));
  }
  return recorder.result();
}

/**
 * A read the source answered with a refusal of that data: a chunk that no longer opens (its seal or its compression
 * broken, or its pack lacking it), or an I/O error (qemu-nbd's EIO on a cluster it cannot read, the disk's own). A
 * lost connection or any other failure is the verify's own, and fails it.
 */
function isDamage(error: unknown): boolean {
  if (error instanceof ChunkFormatError) return true;
  if (error instanceof NbdCommandError && error.local) return false;
  return (error as { code?: unknown } | null)?.code === 'EIO';
}

/**
 * The blocks of `runs` in requests of up to `perRequest` blocks each, a request taking pieces of as many runs as
 * fill it: the newest point of a long chain reads one small piece of each of hundreds of points, and a request
 * (and a hand-off to the hasher's thread) per piece cost more than reading them. Blocks `inside` refuses (beyond
 * the image's end) are listed apart.
 */
export function packRequests(runs: readonly Piece[], perRequest: number, inside: (block: number) => boolean): { requests: { pieces: Piece[]; blocks: number }[]; beyond: number[] } {
  const requests: { pieces: Piece[]; blocks: number }[] = [];
  const beyond: number[] = [];
  let current: { pieces: Piece[]; blocks: number } = { pieces: [], blocks: 0 };
  for (const run of runs) {
    for (let b = run.first; b < run.first + run.count; ) {
      if (!inside(b)) {
        beyond.push(b++);
        continue;
      }
      let count = 1;
      while (count < perRequest - current.blocks && b + count < run.first + run.count && inside(b + count)) count++;
      current.pieces.push({ first: b, count });
      current.blocks += count;
      b += count;
      if (current.blocks === perRequest) {
        requests.push(current);
        current = { pieces: [], blocks: 0 };
      }
    }
  }
  if (current.blocks) requests.push(current);
  return { requests, beyond };
}

/** `<dataDir>/point-exports`: the work area of the exports verifies and syncs read and write through. */
export const pointExportAreaOf = (dataDir: string) => join(dataDir, 'point-exports');
