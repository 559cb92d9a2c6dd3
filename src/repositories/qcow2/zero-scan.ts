/** Bytes a table is scanned in: a chunk of zeros is skipped with one comparison. */
export const ZERO_SCAN_BYTES = 4096;
const ZEROS = Buffer.alloc(ZERO_SCAN_BYTES);

/**
 * Whether bytes [start, start + length) of `buffer` are all zero (length at most ZERO_SCAN_BYTES). The L1 and L2
 * tables of a small incremental are almost all zeros: comparing them a chunk at a time costs a few microseconds a
 * table, where reading every entry cost tens, for every file of a chain a verify checks and opens.
 */
export function isZeroChunk(buffer: Buffer, start: number, length: number): boolean {
  return buffer.compare(ZEROS, 0, length, start, start + length) === 0;
}
