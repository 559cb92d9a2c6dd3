import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeTempDir, qemuIo, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { runQemuImg } from '../../qemu/qemu-img';
import { BlockDigests, DIGEST_BLOCK_SIZE as B, DigestRecorder } from '../../wire/block-digests';
import { NbdClient } from '../../nbd-protocol/nbd-client';
import { Qcow2ChainView } from '../../repositories/qcow2/chain-view';
import { BlockSource, checkBlocks, exportPoint, openPoint } from './block-reader';

/** The work area of an export of `file`: beside it, in the test's temp dir. */
const areaBeside = (file: string) => join(dirname(file), 'point-exports');

/** 130 whole blocks and a short last one, so requests end both on and off a block boundary. */
const SIZE = 130 * B + 1536;

/** Both ways a verify reads a point: the hub's own view of the chain (openPoint's choice for this layout), and qemu-nbd. */
const READERS: [string, (file: string) => Promise<{ source: BlockSource; close(): Promise<void> }>][] = [
  ['the hub\'s view of the chain', (file) => openPoint(file, areaBeside(file))],
  ['qemu-nbd', async (file) => {
    const exported = await exportPoint(file, areaBeside(file));
    return { source: exported.client, close: exported.close };
  }],
];

describe.each(READERS)('checkBlocks: verify reads a point back through %s and compares every block with its digest', (_reader, open) => {
  let dir: string;
  let image: string;
  let digests: BlockDigests;
  const check = async (options: Parameters<typeof checkBlocks>[2], against = digests) => {
    const exported = await open(image);
    try {
      return await checkBlocks(exported.source, against, options);
    } finally {
      await exported.close();
    }
  };

  beforeAll(async () => {
    dir = await makeTempDir('block-reader');
    const data = randomBytes(SIZE);
    await fs.writeFile(join(dir, 'disk.raw'), data);
    image = join(dir, 'disk.qcow2');
    await runQemuImg(['convert', '-q', '-f', 'raw', '-O', 'qcow2', join(dir, 'disk.raw'), image]);
    const recorder = new DigestRecorder(SIZE);
    DigestRecorder.hashInto(recorder.add(0, SIZE, false), 0, data);
    digests = recorder.result();
  });
  afterAll(async () => {
    await removeTempDir(dir);
  });

  it.each([
    ['the defaults', {}],
    ['2 requests of 3 blocks', { requests: 2, requestSize: 3 * B }],
    ['1 request of 1 block', { requests: 1, requestSize: B }],
  ])('an intact image matches with %s, every block read once', async (_name, options) => {
    let told = 0;
    const result = await check({ ...options, onBytes: (n) => (told += n) });
    expect(result).toEqual({ bytesRead: SIZE, blocks: 131, mismatches: [] });
    expect(told).toBe(SIZE);
  });

  it('names each damaged block, the short last one included, and only those', async () => {
    const damaged = join(dir, 'damaged.qcow2');
    await fs.copyFile(image, damaged);
    await qemuIo(damaged, [
      { pattern: 0x5a, offset: 5 * B + 100, length: 512 },
      { pattern: 0x5a, offset: 130 * B + 512, length: 512 },
    ]);
    const exported = await open(damaged);
    try {
      const result = await checkBlocks(exported.source, digests, { requests: 3, requestSize: 4 * B });
      expect(result.mismatches.map((m) => [m.offset, m.length, m.expected === digests.digestAt(m.offset / B)!.toString('hex')])).toEqual([
        [5 * B, B, true],
        [130 * B, 1536, true],
      ]);
      expect(result.mismatches.every((m) => /^[0-9a-f]{64}$/.test(m.actual) && m.actual !== m.expected)).toBe(true);
    } finally {
      await exported.close();
    }
  });

  it('blocks the image does not wholly hold are mismatches, not reads; the blocks it holds are read in the same request', async () => {
    // the digests of a longer disk: block 130 is a whole block there, the image holds 1536 bytes of it
    const longer = new BlockDigests(SIZE + 2 * B, [...digests.runs, { first: 131, count: 2, zero: false, digests: Buffer.alloc(64, 1) }]);
    const result = await check({ requestSize: 4 * B }, longer);
    expect(result.mismatches.map((m) => [m.offset, m.length, m.actual])).toEqual([
      [130 * B, B, 'beyond the end of the image'],
      [131 * B, B, 'beyond the end of the image'],
      [132 * B, 1536, 'beyond the end of the image'],
    ]);
    expect(result).toMatchObject({ bytesRead: 130 * B, blocks: 130 });
  });

  it('reads blocks scattered over many runs, packed into shared requests, and names a damaged one among them', async () => {
    // every third block, as the newest point of a long chain reads one small piece of each of many points
    const scattered = new BlockDigests(SIZE, digests.runs.flatMap((run) => Array.from({ length: Math.ceil(run.count / 3) }, (_, i) => ({ first: run.first + 3 * i, count: 1, zero: false, digests: digests.digestAt(run.first + 3 * i) })))
      .filter((r) => r.first < 130));
    const damaged = join(dir, 'scattered.qcow2');
    await fs.copyFile(image, damaged);
    await qemuIo(damaged, [{ pattern: 0x5a, offset: 33 * B + 7, length: 512 }]);
    const exported = await open(damaged);
    try {
      const result = await checkBlocks(exported.source, scattered, { requests: 2, requestSize: 5 * B });
      expect(result.blocks).toBe(44);
      expect(result.bytesRead).toBe(44 * B);
      expect(result.mismatches.map((m) => [m.offset, m.expected === digests.digestAt(33)!.toString('hex')])).toEqual([[33 * B, true]]);
    } finally {
      await exported.close();
    }
  });

  it('refuses request settings it cannot honour', async () => {
    await expect(check({ requestSize: B + 512 })).rejects.toThrow(/whole blocks/);
    await expect(check({ requestSize: 0 })).rejects.toThrow(/whole blocks/);
    await expect(check({ requests: 0 })).rejects.toThrow(/positive integer/);
  });
});

describe('openPoint', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir('open-point');
  });
  afterAll(async () => {
    await removeTempDir(dir);
  });

  it('reads a chain Sendense writes through the hub\'s own view, and any other layout through qemu-nbd', async () => {
    const plain = join(dir, 'plain.qcow2');
    const compressed = join(dir, 'compressed.qcow2');
    await runQemuImg(['create', '-q', '-f', 'qcow2', plain, '4M']);
    await qemuIo(plain, [{ pattern: 0x21, offset: 0, length: 2 * B }]);
    await runQemuImg(['convert', '-q', '-c', '-f', 'qcow2', '-O', 'qcow2', plain, compressed]);
    for (const [file, kind] of [[plain, Qcow2ChainView], [compressed, NbdClient]] as const) {
      const opened = await openPoint(file, areaBeside(file));
      try {
        expect(opened.source).toBeInstanceOf(kind);
        expect((await opened.source.read(0, 2 * B)).equals(Buffer.alloc(2 * B, 0x21))).toBe(true);
      } finally {
        await opened.close();
      }
    }
  });
});
