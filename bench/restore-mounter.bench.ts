import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listDirectory } from '../src/restore/mounting/directory-listing';
import { RestorePointMounter } from '../src/restore/mounting/restore-point-mounter';
import { runTool } from '../src/restore/mounting/run-tool';

const MiB = 1024 * 1024;
export const BENCH_FILE_SIZE = 200 * MiB;
const FILE_SIZE = BENCH_FILE_SIZE;
const PARTITION_MIB = 300;
const MOUNT_RUNS = 7;
const READ_RUNS = 3;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export function elapsedMs(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Reads a whole file in 1 MiB chunks, the way a download streams it; returns MiB/s. */
export async function readRate(file: string): Promise<number> {
  const start = process.hrtime.bigint();
  let bytes = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: MiB })) bytes += (chunk as Buffer).length;
  if (bytes !== FILE_SIZE) throw new Error(`read ${bytes} bytes of ${file}, expected ${FILE_SIZE}`);
  return bytes / MiB / (elapsedMs(start) / 1000);
}

/** A GPT disk with one ext4 partition holding a 200 MiB incompressible file, as raw and as qcow2. */
export async function buildBenchImage(dir: string): Promise<{ raw: string; qcow2: string; offset: number; size: number }> {
  const tree = join(dir, 'tree');
  await fs.mkdir(tree);
  const handle = await fs.open(join(tree, 'big.bin'), 'w');
  for (let written = 0; written < FILE_SIZE; written += 8 * MiB) await handle.write(randomBytes(8 * MiB));
  await handle.close();
  const fsImage = join(dir, 'ext4.img');
  await fs.writeFile(fsImage, '');
  await fs.truncate(fsImage, PARTITION_MIB * MiB);
  await runTool('mkfs.ext4', ['-q', '-F', '-d', tree, fsImage], { timeoutMs: 120_000 });
  const raw = join(dir, 'disk.raw');
  await fs.writeFile(raw, '');
  await fs.truncate(raw, (PARTITION_MIB + 2) * MiB);
  const script = join(dir, 'layout.sfdisk');
  await fs.writeFile(script, `label: gpt\nsize=${PARTITION_MIB}MiB, type=L\n`);
  await runTool('sh', ['-c', `sfdisk -q "$1" < "$2"`, 'sh', raw, script]);
  const offset = MiB;
  await runTool('dd', [`if=${fsImage}`, `of=${raw}`, 'bs=4M', `seek=${offset}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none'], { timeoutMs: 120_000 });
  await fs.rm(fsImage);
  await fs.rm(tree, { recursive: true });
  const qcow2 = join(dir, 'disk.qcow2');
  await runTool('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2], { timeoutMs: 120_000 });
  return { raw, qcow2, offset, size: PARTITION_MIB * MiB };
}

/**
 * File-level restore figures: time from a mount request to the first
 * directory listing, and the rate of reading a 200 MiB file through the
 * restore mount (qcow2 -> the hub's NBD export (chain-export.ts) -> nbdfuse -> loop -> ext4) against the
 * same file on a plain loop mount of a raw copy of the disk. Every read uses
 * a fresh mount, so the filesystem cache is cold; the image files
 * themselves sit in the host page cache for both paths alike.
 */
export async function runRestoreBench(): Promise<void> {
  const dir = await fs.mkdtemp(join(tmpdir(), 'sendense-restore-bench-'));
  const restoreRoot = join(dir, 'restore');
  const mounter = new RestorePointMounter();
  const out = (line: string) => process.stdout.write(`${line}\n`);
  try {
    const image = await buildBenchImage(dir);
    out(`image: GPT disk, ${PARTITION_MIB} MiB ext4 partition, one ${FILE_SIZE / MiB} MiB random file; qcow2 ${((await fs.stat(image.qcow2)).size / MiB).toFixed(0)} MiB`);

    const toListing: number[] = [];
    const unmounts: number[] = [];
    for (let run = 0; run < MOUNT_RUNS; run++) {
      const start = process.hrtime.bigint();
      const mount = await mounter.mount({ mountId: `list-${run}`, imageFile: image.qcow2, workDir: join(restoreRoot, `list-${run}`) });
      await listDirectory(mount.volumes[0].mountPath!, '');
      toListing.push(elapsedMs(start));
      const unmountStart = process.hrtime.bigint();
      await mounter.unmount(`list-${run}`);
      unmounts.push(elapsedMs(unmountStart));
    }
    out(`mount request -> first listing: median ${median(toListing).toFixed(0)} ms (min ${Math.min(...toListing).toFixed(0)}, max ${Math.max(...toListing).toFixed(0)}, ${MOUNT_RUNS} runs)`);
    out(`unmount (everything torn down):  median ${median(unmounts).toFixed(0)} ms`);

    const viaRestore: number[] = [];
    for (let run = 0; run < READ_RUNS; run++) {
      const mount = await mounter.mount({ mountId: `read-${run}`, imageFile: image.qcow2, workDir: join(restoreRoot, `read-${run}`) });
      try {
        viaRestore.push(await readRate(join(mount.volumes[0].mountPath!, 'big.bin')));
      } finally {
        await mounter.unmount(`read-${run}`);
      }
    }

    const viaLoop = await loopMountReadRates(image, dir);
    const restoreRate = median(viaRestore);
    const loopRate = median(viaLoop);
    out(`read ${FILE_SIZE / MiB} MiB via restore mount (qcow2/the hub's NBD export/nbdfuse/loop): median ${restoreRate.toFixed(0)} MiB/s (${viaRestore.map((r) => r.toFixed(0)).join(', ')})`);
    out(`read ${FILE_SIZE / MiB} MiB via loop mount of the raw copy:                 median ${loopRate.toFixed(0)} MiB/s (${viaLoop.map((r) => r.toFixed(0)).join(', ')})`);
    out(`ratio restore mount / raw loop mount: ${(restoreRate / loopRate).toFixed(2)}`);
  } finally {
    for (const m of mounter.list()) await mounter.unmount(m.mountId).catch(() => undefined);
    await mounter.cleanupLeftovers(restoreRoot).catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** The yardstick: the same file read from a kernel loop mount of the raw disk, READ_RUNS times, each on a fresh mount. */
export async function loopMountReadRates(image: { raw: string; offset: number; size: number }, dir: string): Promise<number[]> {
  const rates: number[] = [];
  const loopDir = join(dir, 'loop-mount');
  await fs.mkdir(loopDir);
  for (let run = 0; run < READ_RUNS; run++) {
    await runTool('mount', ['-o', `ro,noload,loop,offset=${image.offset},sizelimit=${image.size}`, image.raw, loopDir]);
    try {
      rates.push(await readRate(join(loopDir, 'big.bin')));
    } finally {
      await runTool('umount', [loopDir]);
    }
  }
  return rates;
}
