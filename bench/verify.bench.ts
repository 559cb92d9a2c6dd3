import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { copyDisk, DEFAULT_REQUEST_SIZE, DEFAULT_REQUESTS } from '../src/data-mover';
import { nbdcopyCandidates } from './datapath.bench';
import { openNbd } from '../src/nbd-protocol';
import { terminateProcess } from '../src/process/child-process';
import { buildSocketExportArgs } from '../src/qemu/qemu-nbd-args';
import { launchQemuNbd } from '../src/qemu/qemu-nbd-launcher';
import { CheckOptions, checkBlocks, exportPoint, VERIFY_REQUEST_SIZE, VERIFY_REQUESTS } from '../src/restore-points/adapters/block-reader';
import { BlockDigests } from '../src/wire/block-digests';
import { median } from './stats';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SIZE = 1536 * MiB;

const rate = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

/** What one core hashes in 64 KiB blocks: the choice of algorithm. */
function hashRates(): string[] {
  const buf = createHash('sha512').update('seed').digest();
  const data = Buffer.alloc(8 * MiB);
  for (let i = 0; i < data.length; i += buf.length) buf.copy(data, i);
  return ['sha256', 'sha1', 'md5', 'blake2b512'].map((alg) => {
    const t = process.hrtime.bigint();
    let n = 0;
    while (Number(process.hrtime.bigint() - t) < 1e9) {
      for (let o = 0; o < data.length; o += 65536) createHash(alg).update(data.subarray(o, o + 65536)).digest();
      n += data.length;
    }
    return `  ${alg.padEnd(11)} ${rate(n, Number(process.hrtime.bigint() - t) / 1e6)} (one core, 64 KiB blocks)`;
  });
}

/** An export on a Unix socket: the source read-only like the agent's snapshot, a target like the hub's backup targets (detect-zeroes, writeback). */
async function serve(file: string, dir: string, name: string, readOnly: boolean) {
  const socket = join(dir, `${name}.sock`);
  const pidFile = join(dir, `${name}.pid`);
  const mode = readOnly ? ['-r'] : ['--discard=unmap', '--detect-zeroes=unmap'];
  const args = ['-f', 'qcow2', '--persistent', '--shared=2', '-k', socket, '-x', name, '--cache=writeback', ...mode, `--pid-file=${pidFile}`, file];
  const handle = await launchQemuNbd({ args, pidFile, listen: { socket }, logFile: join(dir, `${name}.log`), detached: false }, { readyTimeoutMs: 10_000 });
  return { uri: `nbd+unix:///${name}?socket=${socket}`, stop: () => terminateProcess(handle, 5_000, name) };
}

/** exportPoint's export (the same arguments) for up to 8 clients, so nbdcopy may use several connections. */
async function referenceExport(file: string, dir: string) {
  const socket = join(dir, 'reference.sock');
  const pidFile = join(dir, 'reference.pid');
  const args = buildSocketExportArgs({ file, format: 'qcow2', socket, exportName: 'verify', shared: 8 }, pidFile);
  const handle = await launchQemuNbd({ args, pidFile, listen: { socket }, logFile: join(dir, 'reference.log'), detached: false }, { readyTimeoutMs: 10_000 });
  return { uri: `nbd+unix:///verify?socket=${socket}`, stop: () => terminateProcess(handle, 5_000, 'reference export') };
}

/** nbdcopy reading the whole export into null:, the export's start and stop included as they are in verify's figure. */
async function nbdcopyToNull(file: string, dir: string, options: readonly string[]): Promise<number> {
  const t0 = Date.now();
  const exported = await referenceExport(file, dir);
  try {
    await run('nbdcopy', [...options, exported.uri, 'null:']);
  } finally {
    await exported.stop();
  }
  return Date.now() - t0;
}

/** Verify of one copy, as the hub runs it: the export, the reads and hashes, the export stopped. */
async function verifyOnce(file: string, digests: BlockDigests, options: CheckOptions) {
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  // the hub's work area for such exports is in its data dir; the bench's is beside the copy
  const exported = await exportPoint(file, join(dirname(file), 'point-exports'));
  const check = await checkBlocks(exported.client, digests, options);
  await exported.close();
  const cpu = process.cpuUsage(cpu0);
  return { ms: Date.now() - t0, check, cpuPerGiB: (cpu.user + cpu.system) / 1e6 / (check.bytesRead / (1024 * MiB)) };
}


/**
 * A 1.5 GiB disk of incompressible data: copy throughput with and without digests (the backup path),
 * then verify's read-back of the copy against its digests next to `qemu-img compare` of the same data.
 */
export async function runVerifyBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sendense-bench-verify-'));
  chmodSync(dir, 0o755);
  try {
    process.stdout.write(['hashing:', ...hashRates(), ''].join('\n'));
    const raw = join(dir, 'source.raw');
    const source = join(dir, 'source.qcow2');
    await run('sh', ['-c', `head -c ${SIZE} /dev/urandom > ${raw}`], { maxBuffer: 1024 });
    await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, source]);
    rmSync(raw);
    const src = await serve(source, dir, 'source', true);
    let digests: BlockDigests | undefined;
    const copies: Record<'plain' | 'digests', number[]> = { plain: [], digests: [] };
    try {
      for (const round of [0, 1]) {
        for (const mode of ['plain', 'digests'] as const) {
          const target = join(dir, `target-${mode}-${round}.qcow2`);
          await run('qemu-img', ['create', '-q', '-f', 'qcow2', target, String(SIZE)]);
          const exported = await serve(target, dir, `t-${mode}-${round}`, false);
          const client = await openNbd(exported.uri);
          const sourceClient = await openNbd(src.uri, { metaContexts: ['base:allocation'] });
          const summary = await copyDisk({ source: sourceClient, target: client, mode: 'full', digests: mode === 'digests' });
          copies[mode].push(summary.durationMs);
          if (summary.digests) digests = summary.digests;
          await sourceClient.close();
          await client.close();
          await exported.stop();
          if (mode === 'plain' || round === 0) rmSync(target);
        }
      }
    } finally {
      await src.stop();
    }
    const best = (ms: number[]) => Math.min(...ms);
    const copied = join(dir, 'target-digests-1.qcow2');
    const lines = [
      `backup path, full copy of a 1.5 GiB disk of random data (qemu-nbd -> copyDisk -> qemu-nbd qcow2, ${DEFAULT_REQUESTS} x ${DEFAULT_REQUEST_SIZE / 1024} KiB in flight, best of 2):`,
      `  without digests: ${rate(SIZE, best(copies.plain))} (${best(copies.plain)} ms)`,
      `  with sha256 digests per 64 KiB: ${rate(SIZE, best(copies.digests))} (${best(copies.digests)} ms), ${(((best(copies.digests) - best(copies.plain)) / best(copies.plain)) * 100).toFixed(1)}% longer`,
      `  digest file: ${digests!.encode().length} bytes for ${digests!.blockCount} blocks`,
      `reading the copy back: nbdcopy from exportPoint's kind of export (read-only qemu-nbd on a Unix socket, shared by up to 8 clients) into null:, export start and stop included; options tried once each:`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    let reference: { options: string[]; ms: number } | undefined;
    for (const options of nbdcopyCandidates()) {
      const ms = await nbdcopyToNull(copied, dir, options);
      process.stdout.write(`  nbdcopy ${options.join(' ') || '(defaults)'}: ${rate(SIZE, ms)}\n`);
      if (!reference || ms < reference.ms) reference = { options, ms };
    }
    const runs = Number(process.env.SENDENSE_BENCH_RUNS ?? 3);
    const before = { requests: 16, requestSize: 512 * 1024 };
    process.stdout.write(
      `${runs} rounds, each: nbdcopy ${reference!.options.join(' ') || '(defaults)'} into null: (the reference); verify of the copy (exportPoint + checkBlocks: our NBD client, ${VERIFY_REQUESTS} x ${VERIFY_REQUEST_SIZE / 1024} KiB in flight, sha256 per 64 KiB block on the hasher's thread); the same with ${before.requests} x ${before.requestSize / 1024} KiB in flight (not the reference)\n`,
    );
    const ratios: number[] = [];
    const verifyMs: number[] = [];
    const cpu: number[] = [];
    let mismatches = 0;
    for (let i = 0; i < runs; i++) {
      const ref = await nbdcopyToNull(copied, dir, reference!.options);
      const ours = await verifyOnce(copied, digests!, {});
      const small = await verifyOnce(copied, digests!, before);
      mismatches += ours.check.mismatches.length + small.check.mismatches.length;
      ratios.push(ref / ours.ms);
      verifyMs.push(ours.ms);
      cpu.push(ours.cpuPerGiB);
      process.stdout.write(
        `  round ${i + 1}: nbdcopy ${rate(SIZE, ref)}; verify ${rate(ours.check.bytesRead, ours.ms)} (${ours.ms} ms, ${(ref / ours.ms).toFixed(2)} of nbdcopy; the verifying process ${ours.cpuPerGiB.toFixed(2)} CPU-s per GiB, hasher thread included); with ${before.requests} x ${before.requestSize / 1024} KiB ${rate(small.check.bytesRead, small.ms)} (${small.cpuPerGiB.toFixed(2)} CPU-s per GiB)\n`,
      );
    }
    const t1 = Date.now();
    await run('qemu-img', ['compare', '-q', source, copied]);
    const compareMs = Date.now() - t1;
    process.stdout.write(
      [
        `verify median ${rate(SIZE, median(verifyMs))}, ${median(cpu).toFixed(2)} CPU-s per GiB; ratio verify / nbdcopy per round ${ratios.map((r) => r.toFixed(2)).join(', ')}, median ${median(ratios).toFixed(2)}; mismatches found: ${mismatches}`,
        `qemu-img compare of source and copy (reads both images): ${compareMs} ms, ${rate(SIZE, compareMs)} of disk compared`,
        '',
      ].join('\n'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
