import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BASE_ALLOCATION, QEMU_DIRTY_BITMAP_PREFIX } from '../src/nbd-protocol/constants';
import { openNbd } from '../src/nbd-protocol/open-nbd';
import { copyDisk, CopySummary } from '../src/data-mover/copy-disk';
import { buildQemuNbdArgs, QemuNbdExportSpec, supportsDirectIo } from '../src/qemu/qemu-nbd-args';
import { QEMU_NBD_ENV } from '../src/qemu/qemu-nbd-launcher';
import { median } from './stats';
import { prng } from '../test/support/prng';

/*
 * Data-path benchmark: our copyDisk against nbdcopy (libnbd), both copying a
 * 2 GiB qcow2 holding ~1.5 GiB of data from a read-only qemu-nbd into a fresh
 * qcow2 exported writable by qemu-nbd, over TCP loopback; runs alternate, nbdcopy
 * with the fastest of its options (nbdcopyCandidates, tried once each first).
 * Then an incremental of 64 MiB of scattered changes into an overlay.
 * Knobs: SENDENSE_BENCH_RUNS (default 5), SENDENSE_BENCH_REQUESTS,
 * SENDENSE_BENCH_REQUEST_SIZE, SENDENSE_BENCH_READ_SIZE, SENDENSE_BENCH_NBDCOPY_OPTIONS, SENDENSE_BENCH_DIR
 * (default the OS temp dir), SENDENSE_BENCH_MALLOC=default (both exports with glibc's malloc defaults, as
 * the qemu-nbd an operator starts for `sendense nbd copy`, instead of the hub's QEMU_NBD_ENV).
 */

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const DISK_SIZE = 2 * GiB;
const SLOT = 16 * MiB;

interface Server {
  pid: number;
  uri: string;
}

function run(command: string, args: string[], logFile?: string, env?: Readonly<Record<string, string>>): Promise<void> {
  return new Promise((resolve, reject) => {
    const log = logFile ? openSync(logFile, 'a') : 'ignore';
    const child = spawn(command, args, { stdio: ['ignore', log, logFile ? log : 'pipe'], env: { ...process.env, ...env } });
    if (typeof log === 'number') closeSync(log);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.slice(0, 8).join(' ')} ... exited ${code}: ${stderr || (logFile ? readFileSync(logFile, 'utf8') : '')}`));
    });
  });
}

async function freePort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = 11000 + ((Math.floor(Math.random() * 100) + i) % 100);
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port in 11000-11099');
}

/**
 * `qemu-nbd` arguments of a benches' export (qcow2 "disk" on 127.0.0.1:port, forked) with the hub's options, for ours and
 * nbdcopy alike: a writable one is a backup target's kind, O_DIRECT where the filesystem allows. Run it with QEMU_NBD_ENV.
 */
export function benchExportArgs(port: number, file: string, pidFile: string, options: Pick<QemuNbdExportSpec, 'readOnly' | 'bitmap' | 'tls'>): string[] {
  const spec = { ...options, leaseId: `bench-${port}`, port, file, format: 'qcow2' as const, exportName: 'disk', directIo: !options.readOnly && supportsDirectIo(file) };
  return ['--fork', ...buildQemuNbdArgs(spec, pidFile)];
}

/** The benches' exports run with the hub's environment unless SENDENSE_BENCH_MALLOC=default asks for glibc's defaults. */
function exportEnv(): Readonly<Record<string, string>> {
  return process.env.SENDENSE_BENCH_MALLOC === 'default' ? { LC_ALL: 'C' } : QEMU_NBD_ENV;
}

async function startQemuNbd(dir: string, file: string, opts: { readOnly?: boolean; bitmap?: string }): Promise<Server> {
  const port = await freePort();
  const pidFile = join(dir, `qemu-nbd-${port}.pid`);
  await run('qemu-nbd', benchExportArgs(port, file, pidFile, { readOnly: opts.readOnly ?? false, bitmap: opts.bitmap }), join(dir, `qemu-nbd-${port}.log`), exportEnv());
  return { pid: Number(readFileSync(pidFile, 'utf8').trim()), uri: `nbd://127.0.0.1:${port}/disk` };
}

async function stop(server: Server | undefined): Promise<void> {
  if (!server) return;
  try {
    process.kill(server.pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 300; i++) {
    try {
      process.kill(server.pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  try {
    process.kill(server.pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** 2 GiB qcow2, 96 of its 128 16-MiB slots written (1.5 GiB), the rest left as holes. */
async function buildSource(file: string): Promise<number> {
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(DISK_SIZE)]);
  const commands: string[] = [];
  const slots = DISK_SIZE / SLOT;
  let data = 0;
  for (let i = 0; i < slots; i++) {
    if (i % 4 === 3) continue;
    commands.push('-c', `write -q -P ${(i * 37 + 11) % 251 + 1} ${i * SLOT} ${SLOT}`);
    data += SLOT;
  }
  await run('qemu-io', ['-f', 'qcow2', ...commands, file]);
  return data;
}

/** ~64 MiB of changes: 860 writes of up to 64 KiB at random clusters (every 10th unaligned, every 25th a zero write) plus six 1.5-2 MiB runs. */
async function applyChanges(file: string): Promise<void> {
  const rand = prng(42);
  const commands: string[] = [];
  for (let i = 0; i < 860; i++) {
    const cluster = Math.floor(rand() * (DISK_SIZE / (64 * 1024)));
    const unaligned = i % 10 === 0 ? 512 * (1 + Math.floor(rand() * 100)) : 0;
    const length = 64 * 1024 - unaligned;
    const op = i % 25 === 0 ? `write -q -z ${cluster * 64 * 1024 + unaligned} ${length}` : `write -q -P ${(i % 250) + 1} ${cluster * 64 * 1024 + unaligned} ${length}`;
    commands.push('-c', op);
  }
  // plus a few larger contiguous runs to total ~64 MiB
  for (let i = 0; i < 6; i++) {
    const start = Math.floor(rand() * (DISK_SIZE / MiB - 8)) * MiB;
    commands.push('-c', `write -q -P ${200 + i} ${start} ${i % 2 ? 2 * MiB : 1.5 * MiB}`);
  }
  await run('qemu-io', ['-f', 'qcow2', ...commands, file]);
}

/**
 * Every measured copy starts with no dirty pages in flight (the source, the qemu-img steps and the previous copy
 * write through the page cache): the kernel writing back one copy's 1.5 GiB while the next one ran took a core
 * from it (backup bench runs measured 223-377 MiB/s without this).
 */
export async function settle(): Promise<void> {
  await run('sync', []);
}

function mbps(bytes: number, ms: number): number {
  return bytes / MiB / (ms / 1000);
}

async function oursFull(dir: string, source: Server, targetFile: string, requests?: number, requestSize?: number, readSize?: number): Promise<{ ms: number; summary: CopySummary }> {
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', targetFile, String(DISK_SIZE)]);
  const target = await startQemuNbd(dir, targetFile, {});
  try {
    await settle();
    const began = process.hrtime.bigint();
    const src = await openNbd(source.uri, { metaContexts: [BASE_ALLOCATION] });
    const dst = await openNbd(target.uri);
    const summary = await copyDisk({ source: src, target: dst, mode: 'full', requests, requestSize, readSize });
    await Promise.all([src.close(), dst.close()]);
    return { ms: Number(process.hrtime.bigint() - began) / 1e6, summary };
  } finally {
    await stop(target);
  }
}

/**
 * nbdcopy's connection and request options the data benches try, each once; the fastest is the
 * reference, nbdcopy "in its best configuration". SENDENSE_BENCH_NBDCOPY_OPTIONS="..." replaces the list.
 */
export function nbdcopyCandidates(): string[][] {
  const fixed = process.env.SENDENSE_BENCH_NBDCOPY_OPTIONS;
  if (fixed !== undefined) return [fixed.split(' ').filter(Boolean)];
  return [
    [],
    ['--connections=1'],
    ['--connections=1', '--requests=16'],
    ['--connections=4', '--requests=64'],
    ['--request-size=1048576'],
    ['--connections=2', '--request-size=262144'],
    ['--request-size=4194304'],
    ['--connections=1', '--request-size=2097152'],
    ['--connections=1', '--requests=8', '--request-size=4194304'],
  ];
}

async function nbdcopyFull(dir: string, source: Server, targetFile: string, options: readonly string[]): Promise<number> {
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', targetFile, String(DISK_SIZE)]);
  const target = await startQemuNbd(dir, targetFile, {});
  try {
    await settle();
    const began = process.hrtime.bigint();
    await run('nbdcopy', ['--target-is-zero', ...options, source.uri, target.uri]);
    return Number(process.hrtime.bigint() - began) / 1e6;
  } finally {
    await stop(target);
  }
}

/** SENDENSE_BENCH_REQUESTS, SENDENSE_BENCH_REQUEST_SIZE and SENDENSE_BENCH_READ_SIZE, for a bench's own copies; unset, copyDisk's defaults. */
export function benchCopySettings(): { requests?: number; requestSize?: number; readSize?: number } {
  const { SENDENSE_BENCH_REQUESTS: requests, SENDENSE_BENCH_REQUEST_SIZE: requestSize, SENDENSE_BENCH_READ_SIZE: readSize } = process.env;
  return { ...(requests ? { requests: Number(requests) } : {}), ...(requestSize ? { requestSize: Number(requestSize) } : {}), ...(readSize ? { readSize: Number(readSize) } : {}) };
}

export async function runDatapathBench(): Promise<void> {
  const runs = Number(process.env.SENDENSE_BENCH_RUNS ?? 5);
  const { requests, requestSize, readSize } = benchCopySettings();
  const dir = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? tmpdir(), 'sendense-datapath-bench-'));
  const out = (line: string) => process.stdout.write(`${line}\n`);
  let source: Server | undefined;
  try {
    const srcFile = join(dir, 'source.qcow2');
    let t = Date.now();
    const dataBytes = await buildSource(srcFile);
    out(`source: 2 GiB qcow2 with ${(dataBytes / GiB).toFixed(2)} GiB data, built in ${Date.now() - t} ms`);
    source = await startQemuNbd(dir, srcFile, { readOnly: true });

    out('nbdcopy options, tried once each:');
    let best: { options: string[]; ms: number } | undefined;
    for (const options of nbdcopyCandidates()) {
      const ms = await nbdcopyFull(dir, source, join(dir, 'nbdcopy-options.qcow2'), options);
      rmSync(join(dir, 'nbdcopy-options.qcow2'), { force: true });
      out(`  nbdcopy ${options.join(' ') || '(defaults)'}: ${mbps(dataBytes, ms).toFixed(0)} MiB/s`);
      if (!best || ms < best.ms) best = { options, ms };
    }
    const reference = best!.options;
    out(`reference: nbdcopy --target-is-zero ${reference.join(' ') || '(defaults)'}`);

    const ours: number[] = [];
    const theirs: number[] = [];
    let lastSummary: CopySummary | undefined;
    for (let i = 0; i < runs; i++) {
      const o = await oursFull(dir, source, join(dir, `ours-${i}.qcow2`), requests, requestSize, readSize);
      lastSummary = o.summary;
      if (o.summary.bytesWritten !== dataBytes) throw new Error(`copyDisk wrote ${o.summary.bytesWritten} bytes, expected ${dataBytes}`);
      ours.push(o.ms);
      const n = await nbdcopyFull(dir, source, join(dir, `nbdcopy-${i}.qcow2`), reference);
      theirs.push(n);
      out(`run ${i + 1}: copyDisk ${mbps(dataBytes, o.ms).toFixed(0)} MiB/s (${o.ms.toFixed(0)} ms), nbdcopy ${mbps(dataBytes, n).toFixed(0)} MiB/s (${n.toFixed(0)} ms)`);
      if (i < runs - 1) {
        rmSync(join(dir, `nbdcopy-${i}.qcow2`), { force: true });
        if (i > 0) rmSync(join(dir, `ours-${i - 1}.qcow2`), { force: true });
      }
    }
    const oursRate = mbps(dataBytes, median(ours));
    const theirRate = mbps(dataBytes, median(theirs));
    out(`full copy (median of ${runs}, MiB of data per second): copyDisk ${oursRate.toFixed(0)} MiB/s, nbdcopy ${theirRate.toFixed(0)} MiB/s, ratio ours/nbdcopy ${(oursRate / theirRate).toFixed(2)}`);
    out(`copyDisk settings: requests ${requests ?? 'default'}, requestSize ${requestSize ?? 'default'}, readSize ${readSize ?? 'default'}; exports with ${process.env.SENDENSE_BENCH_MALLOC === 'default' ? "glibc's malloc defaults" : 'QEMU_NBD_ENV'}; summary ${JSON.stringify(lastSummary)}`);
    const t0 = join(dir, `ours-${runs - 1}.qcow2`);
    const cmp = await run('qemu-img', ['compare', '-q', '-f', 'qcow2', '-F', 'qcow2', srcFile, t0]).then(
      () => 'identical',
      (e: Error) => `DIFFERENT: ${e.message}`,
    );
    out(`full copy check (qemu-img compare source vs last copyDisk target): ${cmp}`);

    // Incremental: bitmap, 64 MiB of scattered changes, copy into an overlay of the last full copy.
    await stop(source);
    source = undefined;
    await run('qemu-img', ['bitmap', '--add', '--enable', srcFile, 'b1']);
    t = Date.now();
    await applyChanges(srcFile);
    out(`incremental: changes applied in ${Date.now() - t} ms`);
    const t1 = join(dir, 'incr.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', t0, '-F', 'qcow2', t1]);
    source = await startQemuNbd(dir, srcFile, { readOnly: true, bitmap: 'b1' });
    const target = await startQemuNbd(dir, t1, {});
    try {
      const began = process.hrtime.bigint();
      const src = await openNbd(source.uri, { metaContexts: [QEMU_DIRTY_BITMAP_PREFIX + 'b1', BASE_ALLOCATION] });
      const dst = await openNbd(target.uri);
      const s = await copyDisk({ source: src, target: dst, mode: 'incremental', bitmap: 'b1', requests, requestSize, readSize });
      await Promise.all([src.close(), dst.close()]);
      const ms = Number(process.hrtime.bigint() - began) / 1e6;
      out(
        `incremental: dirty ${(s.dirtyBytes! / MiB).toFixed(2)} MiB, written ${(s.bytesWritten / MiB).toFixed(2)} MiB + zeroed ${(s.bytesZeroed / MiB).toFixed(2)} MiB ` +
          `(= ${s.bytesWritten + s.bytesZeroed === s.dirtyBytes ? 'dirty bytes exactly' : 'MISMATCH'}), ${s.extents} extents, ${ms.toFixed(0)} ms`,
      );
    } finally {
      await stop(target);
    }
    const cmp2 = await run('qemu-img', ['compare', '-q', '-f', 'qcow2', '-F', 'qcow2', srcFile, t1]).then(
      () => 'identical',
      (e: Error) => `DIFFERENT: ${e.message}`,
    );
    out(`incremental check (qemu-img compare source vs overlay): ${cmp2}`);
  } finally {
    await stop(source);
    rmSync(dir, { recursive: true, force: true });
  }
}
