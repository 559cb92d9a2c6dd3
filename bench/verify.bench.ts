import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { copyDisk, DEFAULT_REQUEST_SIZE, DEFAULT_REQUESTS } from '../src/data-mover';
import { openNbd } from '../src/nbd-protocol';
import { terminateProcess } from '../src/process/child-process';
import { launchQemuNbd } from '../src/qemu/qemu-nbd-launcher';
import { checkBlocks, exportPoint, VERIFY_REQUEST_SIZE, VERIFY_REQUESTS } from '../src/restore-points/adapters/block-reader';
import { BlockDigests } from '../src/wire/block-digests';

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
    const t0 = Date.now();
    const exported = await exportPoint(copied);
    const check = await checkBlocks(exported.client, digests!);
    await exported.close();
    const verifyMs = Date.now() - t0;
    const t1 = Date.now();
    await run('qemu-img', ['compare', '-q', source, copied]);
    const compareMs = Date.now() - t1;
    process.stdout.write(
      [
        `backup path, full copy of a 1.5 GiB disk of random data (qemu-nbd -> copyDisk -> qemu-nbd qcow2, ${DEFAULT_REQUESTS} x ${DEFAULT_REQUEST_SIZE / 1024} KiB in flight, best of 2):`,
        `  without digests: ${rate(SIZE, best(copies.plain))} (${best(copies.plain)} ms)`,
        `  with sha256 digests per 64 KiB: ${rate(SIZE, best(copies.digests))} (${best(copies.digests)} ms), ${(((best(copies.digests) - best(copies.plain)) / best(copies.plain)) * 100).toFixed(1)}% longer`,
        `  digest file: ${digests!.encode().length} bytes for ${digests!.blockCount} blocks`,
        `verify of the copy (read-only qemu-nbd export, our NBD client, ${VERIFY_REQUESTS} x ${VERIFY_REQUEST_SIZE / 1024} KiB in flight, sha256 per block):`,
        `  ${(check.bytesRead / MiB).toFixed(0)} MiB read in ${verifyMs} ms: ${rate(check.bytesRead, verifyMs)}, mismatches: ${check.mismatches.length}`,
        `qemu-img compare of source and copy (reads both images): ${compareMs} ms, ${rate(SIZE, compareMs)} of disk compared`,
        '',
      ].join('\n'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
