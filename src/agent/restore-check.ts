import { BlockDigests, DIGEST_BLOCK_SIZE, zeroDigest } from '../wire/block-digests';
import type { DamagedBlock } from '../wire/restore-protocol';

/** Named in the failure; a disk damaged throughout still fails with a readable reason. */
const MAX_DAMAGED = 50;

/**
 * Every block of a restored disk against what the point says it held. `expected` is the point's view (each
 * block's digest from the newest point of its lineage that wrote it); a block no point wrote reads as zeroes.
 * `written` holds what the restore wrote: the digests of the data blocks it copied. A block it skipped reads
 * as zeroes on the new disk, so the point must say zeroes there too.
 */
export function checkRestoredDisk(diskId: string, expected: BlockDigests, written: BlockDigests): { damaged: DamagedBlock[]; damagedBlocks: number; verifiedBlocks: number } {
  if (expected.virtualSize !== written.virtualSize) throw new Error(`the point's digests of ${diskId} describe a ${expected.virtualSize}-byte disk, the restored disk is ${written.virtualSize} bytes`);
  const damaged: DamagedBlock[] = [];
  let verifiedBlocks = 0;
  let damagedBlocks = 0;
  const compare = (block: number, want: Buffer, got: Buffer) => {
    if (want.equals(got)) return void verifiedBlocks++;
    if (damagedBlocks++ < MAX_DAMAGED) damaged.push({ diskId, offset: block * DIGEST_BLOCK_SIZE, length: expected.blockLength(block), expected: want.toString('hex'), actual: got.toString('hex') });
  };
  for (const run of written.runs) {
    for (let b = run.first; b < run.first + run.count; b++) compare(b, expected.digestAt(b) ?? zeroDigest(expected.blockLength(b)), written.digestAt(b)!);
  }
  for (const run of expected.runs) {
    for (let b = run.first; b < run.first + run.count; b++) if (!written.covers(b)) compare(b, expected.digestAt(b)!, zeroDigest(expected.blockLength(b)));
  }
  damaged.sort((a, b) => a.offset - b.offset);
  return { damaged, damagedBlocks, verifiedBlocks };
}
