import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdClient } from '../../nbd-protocol/nbd-client';
import { openNbd } from '../../nbd-protocol/open-nbd';
import { terminateProcess } from '../../process/child-process';
import { buildSocketExportArgs } from '../../qemu/qemu-nbd-args';
import { launchQemuNbd } from '../../qemu/qemu-nbd-launcher';
import { BlockDigests, DIGEST_ALGORITHM, DIGEST_BLOCK_SIZE } from '../../wire/block-digests';

const EXPORT_NAME = 'verify';
/**
 * 16 READs of 8 blocks (512 KiB) in flight: what verify was measured with (docs/benchmarks.md, verify). The
 * backup copy's larger requests (8 x 4 MiB, src/data-mover/copy-disk.ts) have not been measured here.
 */
const REQUEST_BLOCKS = 8;
export const VERIFY_REQUEST_SIZE = REQUEST_BLOCKS * DIGEST_BLOCK_SIZE;
export const VERIFY_REQUESTS = 16;

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

/**
 * A read-only qemu-nbd on a Unix socket in a private directory: no port to lease, nothing outside
 * the host can reach it, and its shared image locks make a writer or a merge on any file of the
 * chain fail instead of changing what is being read.
 */
export async function exportPoint(file: string, readyTimeoutMs = 10_000): Promise<PointExport> {
  const dir = await mkdtemp(join(tmpdir(), 'sendense-verify-'));
  const socket = join(dir, 'nbd.sock');
  const pidFile = join(dir, 'qemu-nbd.pid');
  let handle;
  try {
    const args = buildSocketExportArgs({ file, format: 'qcow2', socket, exportName: EXPORT_NAME, shared: 1 }, pidFile);
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

/**
 * Reads every block of `digests` through `client` with many requests in flight, hashes each block
 * and compares it with its recorded digest. `onBytes` is told of every read as it completes.
 */
export async function checkBlocks(client: NbdClient, digests: BlockDigests, onBytes: (bytes: number) => void = () => undefined): Promise<ReadCheck> {
  const result: ReadCheck = { bytesRead: 0, blocks: 0, mismatches: [] };
  const size = Math.min(digests.virtualSize, client.size);
  function* requests(): Generator<{ first: number; count: number }> {
    for (const run of digests.runs) {
      for (let b = run.first; b < run.first + run.count; b += REQUEST_BLOCKS) yield { first: b, count: Math.min(REQUEST_BLOCKS, run.first + run.count - b) };
    }
  }
  const queue = requests();
  const worker = async () => {
    const buffer = Buffer.allocUnsafe(REQUEST_BLOCKS * DIGEST_BLOCK_SIZE);
    for (let next = queue.next(); !next.done; next = queue.next()) {
      const { first, count } = next.value;
      const offset = first * DIGEST_BLOCK_SIZE;
      const length = Math.min(count * DIGEST_BLOCK_SIZE, digests.virtualSize - offset);
      if (offset + length > size) {
        // the image is shorter than the disk the digests describe: nothing there to read
        for (let b = first; b < first + count; b++) result.mismatches.push({ offset: b * DIGEST_BLOCK_SIZE, length: digests.blockLength(b), expected: digests.digestAt(b)!.toString('hex'), actual: 'beyond the end of the image' });
        continue;
      }
      const data = await client.read(offset, length, buffer);
      result.bytesRead += length;
      onBytes(length);
      for (let b = first; b < first + count; b++) {
        const start = (b - first) * DIGEST_BLOCK_SIZE;
        const block = data.subarray(start, start + digests.blockLength(b));
        const actual = createHash(DIGEST_ALGORITHM).update(block).digest();
        const expected = digests.digestAt(b)!;
        result.blocks++;
        if (!actual.equals(expected)) result.mismatches.push({ offset: b * DIGEST_BLOCK_SIZE, length: block.length, expected: expected.toString('hex'), actual: actual.toString('hex') });
      }
    }
  };
  await Promise.all(Array.from({ length: VERIFY_REQUESTS }, worker));
  result.mismatches.sort((a, b) => a.offset - b.offset);
  return result;
}
