import { copyDisk, planCopy, type CopySource } from './copy-disk';
import { widenRanges } from './copy-plan';
import type { NbdClient } from '../nbd-protocol/nbd-client';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A source without meta contexts (as a VMware datastore file is) over a buffer; the target records what reaches it. */
function source(data: Buffer): CopySource {
  return {
    size: data.length,
    blockSize: { minimum: 1, preferred: 4096, maximum: 32 * MiB, advertised: false },
    maxPayload: 32 * MiB,
    metaContexts: new Map(),
    isOpen: true,
    read: async (offset: number, length: number, into?: Buffer) => {
      const dest = into ? into.subarray(0, length) : Buffer.alloc(length);
      data.copy(dest, 0, offset, offset + length);
      return dest;
    },
    blockStatusAll: async () => {
      throw new Error('no block status here');
    },
  } as unknown as CopySource;
}

function target(size: number) {
  const data = Buffer.alloc(size);
  const writes: [number, number][] = [];
  const client = {
    size,
    blockSize: { minimum: 1, preferred: 4096, maximum: 32 * MiB, advertised: false },
    maxPayload: 32 * MiB,
    metaContexts: new Map(),
    isOpen: true,
    readOnly: false,
    canWriteZeroes: true,
    exportName: 't',
    write: async (offset: number, buf: Buffer) => {
      writes.push([offset, buf.length]);
      buf.copy(data, offset);
    },
    writeZeroes: async (offset: number, length: number) => {
      writes.push([offset, -length]);
      data.fill(0, offset, offset + length);
    },
    flush: async () => undefined,
  } as unknown as NbdClient;
  return { client, data, writes };
}

describe('widenRanges', () => {
  it('widens to clusters, merges what touches and clamps to the end', () => {
    expect(widenRanges([{ offset: 1, length: 10 }, { offset: 64 * KiB, length: 1 }, { offset: 200 * KiB, length: 1 }], 64 * KiB, 201 * KiB)).toEqual([
      { offset: 0, length: 128 * KiB },
      { offset: 192 * KiB, length: 9 * KiB },
    ]);
  });
});

describe('copy by the ranges the source names', () => {
  const data = Buffer.alloc(4 * MiB, 7);

  it('copies exactly the ranges, widened to clusters, as data', async () => {
    const t = target(data.length);
    const summary = await copyDisk({ source: source(data), target: t.client, mode: 'incremental', ranges: [{ offset: 0, length: 64 * KiB }, { offset: 3 * MiB + 5, length: 10 }] });
    expect(summary.bytesWritten).toBe(128 * KiB);
    expect(summary.dirtyBytes).toBe(128 * KiB);
    expect(t.writes.sort((a, b) => a[0] - b[0])).toEqual([[0, 64 * KiB], [3 * MiB, 64 * KiB]]);
    expect(t.data.subarray(3 * MiB, 3 * MiB + 64 * KiB).equals(data.subarray(3 * MiB, 3 * MiB + 64 * KiB))).toBe(true);
    expect(t.data[64 * KiB]).toBe(0);
  });

  it('reads into buffers no larger than the data there is, made only by the workers that read (digests on)', async () => {
    const buffers = new Set<Buffer>();
    const src = source(data);
    const read = src.read.bind(src);
    src.read = (offset: number, length: number, into?: Buffer, ...rest: unknown[]) => {
      if (into) buffers.add(into);
      return (read as (...a: unknown[]) => Promise<Buffer>)(offset, length, into, ...rest);
    };
    const summary = await copyDisk({ source: src, target: target(data.length).client, mode: 'incremental', ranges: [{ offset: MiB, length: 64 * KiB }], digests: true });
    expect(summary.bytesWritten).toBe(64 * KiB);
    // one request: one buffer of its size, where each of the 8 workers used to make one of 4 MiB
    expect([...buffers].map((b) => [b.length, b.buffer instanceof SharedArrayBuffer])).toEqual([[64 * KiB, true]]);
  });

  it('in a full, copies only the ranges that hold data (the fresh target reads zeroes elsewhere)', async () => {
    const plan = await planCopy({ source: source(data), target: target(data.length).client, mode: 'full', ranges: [{ offset: MiB, length: MiB }] });
    expect(plan.ops).toEqual([{ kind: 'data', offset: MiB, length: MiB }]);
  });

  it.each([
    ['unsorted', [{ offset: MiB, length: 10 }, { offset: 0, length: 10 }]],
    ['overlapping', [{ offset: 0, length: 100 }, { offset: 50, length: 10 }]],
    ['past the end', [{ offset: 4 * MiB - 1, length: 2 }]],
    ['empty', [{ offset: 0, length: 0 }]],
  ])('refuses %s ranges before it writes anything', async (_what, ranges) => {
    const t = target(data.length);
    await expect(copyDisk({ source: source(data), target: t.client, mode: 'incremental', ranges })).rejects.toThrow(/copy ranges must be sorted, disjoint and within/);
    expect(t.writes).toEqual([]);
  });
});
