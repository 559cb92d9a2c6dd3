import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { buildStandardChain, BuiltChain, makeTempDir, MiB, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { processesMentioning } from '../../../test/support/processes';
import { imageChunks, openPointReader, ReadFigures } from './point-reader';
import { makeWorkDir } from './work-area';

async function collect(chunks: AsyncGenerator<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** A real qemu-nbd of a real 4-point qcow2 chain, read with our NBD client. */
describe('reading a point as a raw disk through qemu-nbd and block status', () => {
  let dir: string;
  let chain: BuiltChain;
  beforeAll(async () => {
    dir = await makeTempDir('point-reader');
    chain = await buildStandardChain(dir);
  });
  afterAll(async () => removeTempDir(dir));

  it('reads each point exactly as its raw reference, reading only the allocated data; holes and zeroed ranges come as zeroes unread', async () => {
    for (const [i, file] of chain.files.entries()) {
      const work = await makeWorkDir(join(dir, 'area'));
      const reader = await openPointReader(file, work);
      try {
        expect(reader.size).toBe(64 * MiB);
        const figures: ReadFigures = { read: 0, zero: 0 };
        const data = await collect(imageChunks(reader.client, 0, reader.size, figures));
        expect({ i, same: data.equals(await fs.readFile(chain.references[i])) }).toEqual({ i, same: true });
        expect(figures.read + figures.zero).toBe(64 * MiB);
        // the standard chain holds ~12 MiB of data in a 64 MiB disk: most of it must not be read
        expect(figures.read).toBeLessThan(20 * MiB);
        expect(figures.zero).toBeGreaterThan(40 * MiB);
      } finally {
        await reader.close();
      }
      expect(processesMentioning(work)).toEqual([]);
    }
  });

  it('reads any range, also across data/hole borders and ending inside a cluster', async () => {
    const reference = await fs.readFile(chain.references[3]);
    const work = await makeWorkDir(join(dir, 'area'));
    const reader = await openPointReader(chain.files[3], work);
    try {
      for (const [start, end] of [[0, 1], [MiB + 50, MiB + 2000], [8 * MiB - 5000, 8 * MiB + 70_000], [40 * MiB, 41 * MiB + 3], [63 * MiB + 100, 64 * MiB]]) {
        const data = await collect(imageChunks(reader.client, start, end));
        expect({ start, end, same: data.equals(reference.subarray(start, end)) }).toEqual({ start, end, same: true });
      }
    } finally {
      await reader.close();
    }
  });

  it('stops qemu-nbd when the consumer gives up mid-way (the HTTP client went away)', async () => {
    const work = await makeWorkDir(join(dir, 'area'));
    const reader = await openPointReader(chain.files[0], work);
    expect(processesMentioning(work).some((p) => p.cmdline.includes('qemu-nbd'))).toBe(true);
    const chunks = imageChunks(reader.client, 0, reader.size);
    await chunks.next();
    await chunks.return(undefined);
    await reader.close();
    expect(processesMentioning(work)).toEqual([]);
  });

  it('fails clearly for a file qemu-nbd cannot open, leaving nothing running', async () => {
    const work = await makeWorkDir(join(dir, 'area'));
    await expect(openPointReader(join(dir, 'missing.qcow2'), work)).rejects.toThrow(/qemu-nbd exited with code 1: .*missing.qcow2/);
    expect(processesMentioning(work)).toEqual([]);
  });
});
