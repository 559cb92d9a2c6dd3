import { randomBytes } from 'node:crypto';
import { NbdConnectionClosedError } from '../../nbd-protocol/errors';
import { ChunkFormatError } from '../../repositories/chunks/chunk-format';
import { DIGEST_BLOCK_SIZE, DigestRecorder } from '../../wire/block-digests';
import { BlockSource, checkBlocks, hashWholeDisk, packRequests } from './block-reader';

describe('packRequests: how checkBlocks groups the blocks it reads', () => {
  const all = () => true;

  it('fills each request with pieces of as many runs as it takes, in block order', () => {
    const runs = [
      { first: 0, count: 1 },
      { first: 5, count: 1 },
      { first: 9, count: 6 },
      { first: 40, count: 1 },
    ];
    expect(packRequests(runs, 4, all)).toEqual({
      requests: [
        { pieces: [{ first: 0, count: 1 }, { first: 5, count: 1 }, { first: 9, count: 2 }], blocks: 4 },
        { pieces: [{ first: 11, count: 4 }], blocks: 4 },
        { pieces: [{ first: 40, count: 1 }], blocks: 1 },
      ],
      beyond: [],
    });
  });

  it('splits a long run into whole requests', () => {
    const { requests } = packRequests([{ first: 3, count: 10 }], 4, all);
    expect(requests.map((r) => r.pieces)).toEqual([[{ first: 3, count: 4 }], [{ first: 7, count: 4 }], [{ first: 11, count: 2 }]]);
  });

  it('lists the blocks beyond the image apart and reads none of them', () => {
    const { requests, beyond } = packRequests([{ first: 0, count: 3 }, { first: 6, count: 3 }], 8, (b) => b < 7);
    expect(requests).toEqual([{ pieces: [{ first: 0, count: 3 }, { first: 6, count: 1 }], blocks: 4 }]);
    expect(beyond).toEqual([7, 8]);
  });

  it('reads nothing for no runs', () => {
    expect(packRequests([], 4, all)).toEqual({ requests: [], beyond: [] });
  });
});

describe('checkBlocks: a block the source cannot give back', () => {
  // a disk of 10 blocks and its digests; the source is faked (an in-memory disk whose reads can fail)
  const disk = randomBytes(10 * DIGEST_BLOCK_SIZE);
  const recorder = new DigestRecorder(disk.length);
  DigestRecorder.hashInto(recorder.add(0, disk.length, false), 0, disk);
  const digests = recorder.result();
  const source = (fails: (block: number) => Error | null): BlockSource => ({
    size: disk.length,
    read: async (offset, length, into) => {
      for (let b = offset / DIGEST_BLOCK_SIZE; b * DIGEST_BLOCK_SIZE < offset + length; b++) {
        const error = fails(b);
        if (error) throw error;
      }
      const out = into ?? Buffer.alloc(length);
      disk.copy(out, 0, offset, offset + length);
      return out;
    },
  });

  it('is that block\'s damage, reported with why, and every other block of its request is still checked', async () => {
    const result = await checkBlocks(source((b) => (b === 3 ? new ChunkFormatError('chunk 3f… does not open under the repository key') : null)), digests, { requests: 2, requestSize: 4 * DIGEST_BLOCK_SIZE });
    expect(result.blocks).toBe(10);
    expect(result.mismatches).toEqual([{ offset: 3 * DIGEST_BLOCK_SIZE, length: DIGEST_BLOCK_SIZE, expected: digests.digestAt(3)!.toString('hex'), actual: 'cannot be read: chunk 3f… does not open under the repository key' }]);
  });

  it("an I/O error is damage too; a lost connection is the verify's own failure", async () => {
    const eio = Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
    expect((await checkBlocks(source((b) => (b === 9 ? eio : null)), digests)).mismatches.map((m) => m.offset)).toEqual([9 * DIGEST_BLOCK_SIZE]);
    await expect(checkBlocks(source((b) => (b === 5 ? new NbdConnectionClosedError('the server closed the connection') : null)), digests)).rejects.toThrow('the server closed the connection');
  });
});

describe('hashWholeDisk: digests that name every block of a disk', () => {
  it('names each block, zeros and the short last one included, as the copy that wrote it would have', async () => {
    const disk = Buffer.concat([randomBytes(3 * DIGEST_BLOCK_SIZE), Buffer.alloc(70 * DIGEST_BLOCK_SIZE), randomBytes(1000)]);
    const source: BlockSource = { size: disk.length, read: async (offset, length, into) => (disk.copy(into!, 0, offset, offset + length), into!) };
    const recorder = new DigestRecorder(disk.length);
    DigestRecorder.hashInto(recorder.add(0, disk.length, false), 0, disk);
    const expected = recorder.result();
    const hashed = await hashWholeDisk(source);
    expect(hashed.blockCount).toBe(74);
    for (let b = 0; b < 74; b++) expect(hashed.digestAt(b)!.equals(expected.digestAt(b)!)).toBe(true);
  });
});
