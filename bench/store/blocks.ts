import { hash } from 'node:crypto';
import { open } from 'node:fs/promises';

export const BLOCK = 64 * 1024;
const ZERO = Buffer.alloc(BLOCK);

/** A disk image as the hub sees it: the SHA-256 of every 64 KiB block (null for a block of zeros). */
export interface BlockMap {
  size: number;
  digests: (string | null)[];
}

export async function blockMap(image: string): Promise<BlockMap> {
  const file = await open(image, 'r');
  try {
    const { size } = await file.stat();
    const digests: (string | null)[] = [];
    const buffer = Buffer.allocUnsafe(16 * BLOCK);
    for (let pos = 0; pos < size; pos += buffer.length) {
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, size - pos), pos);
      for (let at = 0; at < bytesRead; at += BLOCK) {
        const block = buffer.subarray(at, Math.min(at + BLOCK, bytesRead));
        digests.push(block.length === BLOCK && block.equals(ZERO) ? null : hash('sha256', block, 'hex'));
      }
    }
    return { size, digests };
  } finally {
    await file.close();
  }
}

/** The blocks whose content differs from the previous map's (what change tracking at 64 KiB would report, at least). */
export function changedBlocks(previous: BlockMap | null, current: BlockMap): number[] {
  const out: number[] = [];
  current.digests.forEach((d, i) => {
    if (previous ? previous.digests[i] !== d : d !== null) out.push(i);
  });
  return out;
}
