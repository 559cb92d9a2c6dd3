import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { borrowHasher, releaseHasher, sharedBuffer } from '../../data-mover';
import { NbdClient } from '../../nbd-protocol/nbd-client';
import { openNbd } from '../../nbd-protocol/open-nbd';
import { terminateProcess } from '../../process/child-process';
import { buildSocketExportArgs, supportsDirectIo } from '../../qemu/qemu-nbd-args';
import { launchQemuNbd } from '../../qemu/qemu-nbd-launcher';
import { Qcow2ChainView } from '../../repositories/qcow2/chain-view';
import { BlockDigests, DIGEST_BLOCK_SIZE, DIGEST_LENGTH } from '../../wire/block-digests';

const EXPORT_NAME = 'verify';
/**
 * Verify reads like the backup copies: 8 requests of 4 MiB in flight (src/data-mover/copy-disk.ts), each
 * hashed on the hasher's thread while the next reads arrive (docs/benchmarks.md, verify).
 */
export const VERIFY_REQUESTS = 8;
export const VERIFY_REQUEST_SIZE = 64 * DIGEST_BLOCK_SIZE;

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
 * A point's chain read through the hub's own resolution of it (Qcow2ChainView), which costs the same at any depth
 * where qemu walks every file above the one holding a block; a chain with a layout that view does not resolve (an
 * encrypted repository, compressed clusters) is read through a read-only qemu-nbd export, as before.
 */
export async function openPoint(file: string, readyTimeoutMs = 10_000): Promise<PointReader> {
  const view = await Qcow2ChainView.open(file);
  if (view) return { source: view, close: () => view.close() };
  const exported = await exportPoint(file, readyTimeoutMs);
  return { source: exported.client, close: exported.close };
}

/**
 * A read-only qemu-nbd on a Unix socket in a private directory: no port to lease, nothing outside
 * the host can reach it, and its shared image locks make a writer or a merge on any file of the
 * chain fail instead of changing what is being read.
 */
export function exportPoint(file: string, readyTimeoutMs = 10_000): Promise<PointExport> {
  return exportFile(file, false, readyTimeoutMs);
}

/**
 * The same for a new point's file being written (a sync's copy): written once and not read back soon, so around the
 * page cache where the filesystem allows it, as a backup target is (see buildQemuNbdArgs).
 */
export function exportForWriting(file: string, readyTimeoutMs = 10_000): Promise<PointExport> {
  return exportFile(file, true, readyTimeoutMs);
}

async function exportFile(file: string, writable: boolean, readyTimeoutMs: number): Promise<PointExport> {
  const dir = await mkdtemp(join(tmpdir(), 'sendense-verify-'));
  const socket = join(dir, 'nbd.sock');
  const pidFile = join(dir, 'qemu-nbd.pid');
  let handle;
  try {
    const args = buildSocketExportArgs({ file, format: 'qcow2', socket, exportName: EXPORT_NAME, shared: 1, ...(writable ? { writable: { directIo: supportsDirectIo(file) } } : {}) }, pidFile);
    handle = await launchQemuNbd({ args, pidFile, listen: { socket }, logFile: join(dir, 'qemu-nbd.log'), detached: false }, { readyTimeoutMs });
    const client = await openNbd(`nbd+unix:///${EXPORT_NAME}?socket=${socket}`);
    const server = handle;
    return {
      client,
      close: async () => {
        await client.close().catch(() => undefined);
        await terminateProcess(server, 5_000, `qemu-nbd verify export of ${file}`);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (handle) await terminateProcess(handle, 5_000, `qemu-nbd verify export of ${file}`);
    await rm(dir, { recursive: true, force: true });
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
  const requestBlocks = requestSize / DIGEST_BLOCK_SIZE;
  const result: ReadCheck = { bytesRead: 0, blocks: 0, mismatches: [] };
  const size = Math.min(digests.virtualSize, client.size);
  function* requests(): Generator<{ first: number; count: number }> {
    for (const run of digests.runs) {
      for (let b = run.first; b < run.first + run.count; b += requestBlocks) yield { first: b, count: Math.min(requestBlocks, run.first + run.count - b) };
    }
  }
  // No more readers, and no larger buffers, than the reads need: a verify of a long chain checks a few blocks of
  // each point, and 8 zeroed 4 MiB buffers per point cost more than reading them (docs/benchmarks.md, chain).
  const all = [...requests()];
  const queue = all.values();
  const bufferSize = all.reduce((most, r) => Math.max(most, r.count), 0) * DIGEST_BLOCK_SIZE;
  const end = (b: number) => b * DIGEST_BLOCK_SIZE + digests.blockLength(b);
  const hasher = borrowHasher();
  const worker = async () => {
    const buffer = sharedBuffer(bufferSize);
    for (let next = queue.next(); !next.done; next = queue.next()) {
      const { first, count } = next.value;
      // The image may be shorter than the disk the digests describe: a block it does not wholly hold is not read.
      let inside = 0;
      while (inside < count && end(first + inside) <= size) inside++;
      for (let b = first + inside; b < first + count; b++) result.mismatches.push({ offset: b * DIGEST_BLOCK_SIZE, length: digests.blockLength(b), expected: digests.digestAt(b)!.toString('hex'), actual: 'beyond the end of the image' });
      if (!inside) continue;
      const offset = first * DIGEST_BLOCK_SIZE;
      const length = end(first + inside - 1) - offset;
      const data = await client.read(offset, length, buffer);
      result.bytesRead += length;
      onBytes(length);
      const hashed = await hasher.hash(data);
      for (let b = first; b < first + inside; b++) {
        const actual = hashed.subarray((b - first) * DIGEST_LENGTH, (b - first + 1) * DIGEST_LENGTH);
        const expected = digests.digestAt(b)!;
        result.blocks++;
        if (!actual.equals(expected)) result.mismatches.push({ offset: b * DIGEST_BLOCK_SIZE, length: digests.blockLength(b), expected: expected.toString('hex'), actual: actual.toString('hex') });
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(inFlight, all.length) }, worker));
  } finally {
    await releaseHasher(hasher);
  }
  result.mismatches.sort((a, b) => a.offset - b.offset);
  return result;
}
