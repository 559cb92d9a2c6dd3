import { copyFileSync, mkdtempSync, openSync, closeSync, readSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../process/run-process';
import { check } from './qemu-img';
import { checkQcow2 } from './qcow2-check';

/** Every verdict is compared with qemu-img check's on the same real file. */
describe('checkQcow2 against qemu-img check', () => {
  let dir: string;
  const path = (name: string) => join(dir, name);
  const qemuImg = (...args: string[]) => runProcess('qemu-img', args);
  const qemuIo = (file: string, ...commands: string[]) => runProcess('qemu-io', ['-f', 'qcow2', ...commands.flatMap((c) => ['-c', c]), file]);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-qcow2-check-'));
    await qemuImg('create', '-q', '-f', 'qcow2', path('empty.qcow2'), '64M');
    // three L2 tables (each maps 512 MiB with 64 KiB clusters)
    await qemuImg('create', '-q', '-f', 'qcow2', path('data.qcow2'), '1536M');
    await qemuIo(path('data.qcow2'), 'write -P 1 0 1M', 'write -P 2 600M 192k', 'write -P 3 1200M 64k', 'write -P 4 5M 256k', 'write -z 5M 64k', 'write -z -u 5184k 64k', 'discard 0 128k');
    await qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'data.qcow2', path('overlay.qcow2'));
    await qemuIo(path('overlay.qcow2'), 'write -P 9 64k 64k', 'write -z 1200M 64k');
    // 4 KiB clusters: a refcount block covers 8 MiB, so 20 MiB of data needs several
    await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', path('small-clusters.qcow2'), '64M');
    await qemuIo(path('small-clusters.qcow2'), 'write -P 5 0 20M', 'write -P 6 40M 4k');
    // L2 entries 511, 512 and 1023: the edges of the 4 KiB chunks a table is scanned in
    await qemuImg('create', '-q', '-f', 'qcow2', path('chunk-edges.qcow2'), '64M');
    await qemuIo(path('chunk-edges.qcow2'), 'write -P 7 32704K 128K', 'write -P 8 65472K 64K');
  });
  afterAll(() => process.env.KEEP || rmSync(dir, { recursive: true, force: true }));

  async function both(file: string) {
    const [ours, qemu] = await Promise.all([checkQcow2(file), check(file)]);
    if (!ours) throw new Error(`${file}: the checker deferred to qemu-img`);
    return { ours, qemu };
  }

  it.each(['empty.qcow2', 'data.qcow2', 'overlay.qcow2', 'small-clusters.qcow2', 'chunk-edges.qcow2'])('finds %s clean, as qemu-img does', async (name) => {
    const { ours, qemu } = await both(path(name));
    expect(qemu).toMatchObject({ opened: true, corruptions: 0, leaks: 0, checkErrors: 0 });
    expect(ours).toEqual({ corruptions: 0, leaks: 0, checkErrors: 0, messages: [] });
  });

  /** A copy of data.qcow2 with `damage` done to its bytes. */
  function damaged(name: string, damage: (file: string, layout: Layout) => void): string {
    const file = path(`${name}.qcow2`);
    copyFileSync(path('data.qcow2'), file);
    damage(file, layoutOf(file));
    return file;
  }

  const cases: [string, (file: string, l: Layout) => void][] = [
    ['a data cluster recorded as unused', (f, l) => writeU16(f, l.refcountBlock + 2 * l.dataCluster, 0)],
    ['a data cluster recorded as used twice', (f, l) => writeU16(f, l.refcountBlock + 2 * l.dataCluster, 2)],
    ['an L2 entry without its COPIED flag', (f, l) => writeU64(f, l.l2 + 8 * l.l2Index, l.l2Entry & ~(1n << 63n))],
    ['an L2 entry pointing into a cluster', (f, l) => writeU64(f, l.l2 + 8 * l.l2Index, l.l2Entry + 512n)],
    ['an L2 entry pointing at the L1 table', (f, l) => writeU64(f, l.l2 + 8 * l.l2Index, (1n << 63n) | BigInt(l.l1))],
    ['an L1 entry with a reserved bit set', (f, l) => writeU64(f, l.l1, l.l1Entry | (1n << 60n))],
    ['a refcount table entry that is not cluster aligned', (f, l) => writeU64(f, l.refcountTable, BigInt(l.refcountBlock + 512))],
    ['a cluster appended but referenced by nothing (a leak)', (f, l) => {
      const size = statSync(f).size;
      const cluster = Math.ceil(size / l.clusterSize);
      truncateSync(f, (cluster + 1) * l.clusterSize);
      writeU16(f, l.refcountBlock + 2 * cluster, 1);
    }],
    ['a file cut short inside its data', (f, l) => truncateSync(f, l.dataCluster * l.clusterSize + 4096)],
  ];

  it.each(cases)('reports %s as qemu-img does', async (name, damage) => {
    const { ours, qemu } = await both(damaged(name.replace(/\W+/g, '-'), damage));
    expect(qemu.opened).toBe(true);
    expect(ours.corruptions).toBe(qemu.corruptions);
    expect(ours.checkErrors).toBe(qemu.checkErrors);
    expect(ours.leaks).toBe(qemu.leaks);
    expect(ours.corruptions + ours.checkErrors > 0).toBe(qemu.corruptions + qemu.checkErrors > 0);
    expect(ours.corruptions + ours.leaks + ours.checkErrors).toBeGreaterThan(0);
    expect(ours.messages.length).toBe(ours.corruptions + ours.leaks + ours.checkErrors);
  });

  it('counts what qemu-img counts after single bit flips anywhere in the tables (40 seeded flips)', async () => {
    const layout = layoutOf(path('data.qcow2'));
    // the used part of each table: a flip in an unused entry of a table is a different damage, not a different count
    const regions: [number, number][] = [
      [layout.l1, 3 * 8],
      [layout.l2, 16 * 8],
      [layout.refcountTable, 8],
      [layout.refcountBlock, 32 * 2],
    ];
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    let compared = 0;
    for (let i = 0; i < 40; i++) {
      const [start, length] = regions[i % regions.length];
      const byte = start + random(length);
      const file = path(`flip-${i}.qcow2`);
      copyFileSync(path('data.qcow2'), file);
      const b = readBytes(file, byte, 1);
      b[0] ^= 1 << random(8);
      writeBytes(file, byte, b);
      const [ours, qemu] = await Promise.all([checkQcow2(file), check(file)]);
      if (ours === null || !qemu.opened) continue; // a flip into the compressed flag defers to qemu-img; qemu may refuse to open
      compared++;
      expect({ flip: `byte ${byte}`, corruptions: ours.corruptions, leaks: ours.leaks, checkErrors: ours.checkErrors }).toEqual({ flip: `byte ${byte}`, corruptions: qemu.corruptions, leaks: qemu.leaks, checkErrors: qemu.checkErrors });
    }
    expect(compared).toBeGreaterThanOrEqual(30);
  });

  it.each([
    ['a qcow2 v2 image', ['-o', 'compat=0.10']],
    ['lazy refcounts', ['-o', 'lazy_refcounts=on']],
    ['8-bit refcounts', ['-o', 'refcount_bits=8']],
    ['extended L2 entries', ['-o', 'extended_l2=on']],
  ])('leaves %s to qemu-img', async (name, options) => {
    const file = path(`${name.replace(/\W+/g, '-')}.qcow2`);
    await qemuImg('create', '-q', '-f', 'qcow2', ...options, file, '64M');
    expect(await checkQcow2(file)).toBeNull();
  });

  it('leaves images with bitmaps, internal snapshots or compressed clusters to qemu-img', async () => {
    copyFileSync(path('data.qcow2'), path('bitmap.qcow2'));
    await qemuImg('bitmap', '--add', path('bitmap.qcow2'), 'b0');
    copyFileSync(path('data.qcow2'), path('snapshot.qcow2'));
    await qemuImg('snapshot', '-c', 's0', path('snapshot.qcow2'));
    await qemuImg('convert', '-c', '-O', 'qcow2', path('data.qcow2'), path('compressed.qcow2'));
    for (const name of ['bitmap.qcow2', 'snapshot.qcow2', 'compressed.qcow2']) expect(await checkQcow2(path(name))).toBeNull();
  });
});

interface Layout {
  clusterSize: number;
  l1: number;
  l1Entry: bigint;
  l2: number;
  /** The first L2 entry that maps a data cluster. */
  l2Index: number;
  l2Entry: bigint;
  dataCluster: number;
  refcountTable: number;
  refcountBlock: number;
}

function layoutOf(file: string): Layout {
  const clusterSize = 2 ** Number(readU32(file, 20));
  const l1 = Number(readU64(file, 40));
  const l1Entry = readU64(file, l1);
  const l2 = Number(l1Entry & 0x00fffffffffffe00n);
  let l2Index = 0;
  while (!(readU64(file, l2 + 8 * l2Index) & 0x00fffffffffffe00n)) l2Index++;
  const l2Entry = readU64(file, l2 + 8 * l2Index);
  const refcountTable = Number(readU64(file, 48));
  const refcountBlock = Number(readU64(file, refcountTable) & ~0x1ffn);
  return { clusterSize, l1, l1Entry, l2, l2Index, l2Entry, dataCluster: Number((l2Entry & 0x00fffffffffffe00n) / BigInt(clusterSize)), refcountTable, refcountBlock };
}

function readBytes(file: string, offset: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, offset);
    return buffer;
  } finally {
    closeSync(fd);
  }
}
const readU32 = (file: string, offset: number) => readBytes(file, offset, 4).readUInt32BE(0);
const readU64 = (file: string, offset: number) => readBytes(file, offset, 8).readBigUInt64BE(0);

function writeBytes(file: string, offset: number, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}
function writeU16(file: string, offset: number, value: number): void {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  writeBytes(file, offset, b);
}
function writeU64(file: string, offset: number, value: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(value);
  writeBytes(file, offset, b);
}
