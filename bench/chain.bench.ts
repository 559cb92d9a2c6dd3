import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { terminateProcess } from '../src/process/child-process';
import { buildSocketExportArgs, IO_URING } from '../src/qemu/qemu-nbd-args';
import { launchQemuNbd } from '../src/qemu/qemu-nbd-launcher';
import { check, info } from '../src/qemu/qemu-img';
import { checkQcow2 } from '../src/repositories/qcow2/qcow2-check';
import { nbdcopyCandidates } from './datapath.bench';
import { Lab } from './backup.bench';
import { median } from './stats';

/*
 * Long chains: a powered-off VM (a 512 MiB qcow2 disk, ext4 in its first 256 MiB with a 64 MiB file of random
 * data) backed up full, then incrementally after a 64 KiB write each time (SENDENSE_BENCH_CHAIN_POINTS
 * incrementals, default 200). On the newest point at chain length 2 and at the end, and again after retention
 * (keepLast SENDENSE_BENCH_CHAIN_KEEP, default 10) merged the chain down: the time to mount it, to download the
 * 64 MiB file from the mount, and to verify the point (SENDENSE_BENCH_RUNS of each, default 3, medians).
 * At chain lengths 2 and 201 also the two parts of those that grow with the chain, each against what it
 * replaced: checking every file (the hub's own check, qemu-img check) and opening the newest point read-only
 * (qemu-nbd with io_uring, with its thread pool).
 */

const run = promisify(execFile);
const MiB = 1024 * 1024;
const out = (line: string) => process.stdout.write(`${line}\n`);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

interface Figures {
  chain: number;
  mountMs: number;
  downloadMs: number;
  verifyMs: number;
}

async function measure(lab: Lab, restorePointId: string, expectedSha: string, runs: number): Promise<Omit<Figures, 'chain'>> {
  const mount: number[] = [];
  const download: number[] = [];
  const verify: number[] = [];
  for (let i = 0; i < runs; i++) {
    let t = performance.now();
    const mounted = await lab.api('POST', '/api/v1/restore/mounts', { restorePointId });
    if (mounted.status !== 201) throw new Error(`mount refused: ${mounted.status} ${JSON.stringify(mounted.body)}`);
    mount.push(performance.now() - t);
    const { mountId, volumes } = mounted.body as { mountId: string; volumes: { id: string; status: string }[] };
    try {
      const volume = volumes.find((v) => v.status === 'mounted')!.id;
      t = performance.now();
      const res = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/restore/mounts/${mountId}/file?volume=${encodeURIComponent(volume)}&path=/data/big.bin`, { headers: { Authorization: `Bearer ${lab.token}` } });
      const body = Buffer.from(await res.arrayBuffer());
      download.push(performance.now() - t);
      if (res.status !== 200 || createHash('sha256').update(body).digest('hex') !== expectedSha) throw new Error(`the file read from the mount is not the file backed up (${res.status}, ${body.length} bytes)`);
    } finally {
      await lab.api('DELETE', `/api/v1/restore/mounts/${mountId}`);
    }
    t = performance.now();
    const verified = await lab.api('POST', `/api/v1/restore-points/${restorePointId}/verify`);
    verify.push(performance.now() - t);
    if (verified.status !== 201 || !verified.body.content.ok) throw new Error(`verify failed: ${JSON.stringify(verified.body).slice(0, 500)}`);
  }
  return { mountMs: median(mount), downloadMs: median(download), verifyMs: median(verify) };
}

async function timed(runs: number, work: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await work();
    times.push(performance.now() - t);
  }
  return median(times);
}

/** The parts of a verify and a mount that grow with the chain, beside what each replaced, on the same files in this run. */
async function chainParts(lab: Lab, repoRoot: string, restorePointId: string, runs: number, dir: string): Promise<{ openMs: number; readMs: number }> {
  const point = (await lab.api('GET', `/api/v1/restore-points/${restorePointId}`)).body as { disks: { file: string }[] };
  const newest = join(repoRoot, point.disks[0].file);
  const files = (await info(newest, { backingChain: true })).map((image) => image.filename);
  const own = await timed(runs, async () => {
    for (const file of files) if ((await checkQcow2(file))?.corruptions !== 0) throw new Error(`${file}: the hub's check did not find it clean`);
  });
  const qemuImg = await timed(runs, async () => {
    for (const file of files) if (!(await check(file)).ok) throw new Error(`${file}: qemu-img check did not find it clean`);
  });
  const open = (ioUring: boolean) =>
    timed(runs, async () => {
      const socket = join(dir, 'parts.sock');
      const pidFile = join(dir, 'parts.pid');
      const args = buildSocketExportArgs({ file: newest, format: 'qcow2', socket, exportName: 'parts', shared: 1 }, pidFile).filter((a) => ioUring || a !== IO_URING);
      if (ioUring && !args.includes(IO_URING)) throw new Error('io_uring is not usable here');
      const server = await launchQemuNbd({ args, pidFile, listen: { socket }, logFile: join(dir, 'parts.log'), detached: false }, { readyTimeoutMs: 30_000 });
      await terminateProcess(server, 5_000, 'qemu-nbd');
    });
  const [uring, threads] = [await open(true), await open(false)];
  const read = await readThrough(newest, runs, dir);
  out(`  ${files.length} files, medians of ${runs}: check every file: in the hub ${own.toFixed(0)} ms, qemu-img check ${qemuImg.toFixed(0)} ms (${(own / qemuImg).toFixed(2)}); open the newest read-only (qemu-nbd serving): io_uring ${uring.toFixed(0)} ms, thread pool ${threads.toFixed(0)} ms (${(uring / threads).toFixed(2)})`);
  out(`    qemu alone: every allocated block of the newest read through its export, nbdcopy ${read.options.join(' ') || '(defaults)'} to null: ${read.ms.toFixed(0)} ms`);
  return { openMs: uring, readMs: read.ms };
}

/**
 * What reading the point costs qemu itself at this depth, the reference for a verify's and a download's reads: nbdcopy
 * (its fastest options here) reads every block the newest point's view holds through an io_uring export of it.
 */
async function readThrough(file: string, runs: number, dir: string): Promise<{ options: string[]; ms: number }> {
  const socket = join(dir, 'read.sock');
  const pidFile = join(dir, 'read.pid');
  const args = buildSocketExportArgs({ file, format: 'qcow2', socket, exportName: 'read', shared: 4 }, pidFile);
  const server = await launchQemuNbd({ args, pidFile, listen: { socket }, logFile: join(dir, 'read.log'), detached: false }, { readyTimeoutMs: 30_000 });
  try {
    const copy = (options: string[]) => run('nbdcopy', [...options, `nbd+unix:///read?socket=${socket}`, 'null:']);
    let best: { options: string[]; ms: number } | undefined;
    for (const options of nbdcopyCandidates()) {
      const ms = await timed(1, () => copy(options));
      if (!best || ms < best.ms) best = { options, ms };
    }
    return { options: best!.options, ms: await timed(runs, () => copy(best!.options)) };
  } finally {
    await terminateProcess(server, 5_000, 'qemu-nbd');
  }
}

export async function runChainBench(): Promise<void> {
  const points = Number(process.env.SENDENSE_BENCH_CHAIN_POINTS ?? 200);
  const keep = Number(process.env.SENDENSE_BENCH_CHAIN_KEEP ?? 10);
  const runs = Number(process.env.SENDENSE_BENCH_RUNS ?? 3);
  // unset: the repository is registered as an operator would, with the product's default limit
  const maxChainDepth = process.env.SENDENSE_BENCH_CHAIN_MAX_DEPTH ? Number(process.env.SENDENSE_BENCH_CHAIN_MAX_DEPTH) : undefined;
  const dir = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? tmpdir(), 'sendense-chain-bench-'));
  chmodSync(dir, 0o755);
  const lab = new Lab(dir, undefined, { repositorySettings: maxChainDepth === undefined ? {} : { maxChainDepth } });
  try {
    out(`load average at start: ${load()}`);
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'data'), { recursive: true });
    const big = randomBytes(64 * MiB);
    writeFileSync(join(tree, 'data', 'big.bin'), big);
    const sha = createHash('sha256').update(big).digest('hex');
    const raw = join(dir, 'disk0.raw');
    const disk = join(dir, 'disk0.qcow2');
    await run('truncate', ['-s', '256M', raw]);
    await run('mkfs.ext4', ['-q', '-F', '-d', tree, raw]);
    await run('qemu-img', ['convert', '-q', '-O', 'qcow2', raw, disk]);
    await run('qemu-img', ['resize', '-q', disk, '512M']);
    rmSync(raw);
    const inventory = join(dir, 'inventory.json');
    writeFileSync(inventory, JSON.stringify({ vms: [{ id: 'chain-vm', name: 'chain-vm', disks: [{ id: 'disk0', path: disk }] }] }));
    await lab.start(['--inventory', inventory]);
    const limit = (await lab.api('GET', `/api/v1/repositories/${lab.repositoryId}`)).body.maxChainDepth as number;
    out(`the repository's maxChainDepth: ${limit}${maxChainDepth === undefined ? ' (the default)' : ''}`);
    const list = async () => (await lab.api('GET', `/api/v1/vms/chain-vm/restore-points?repositoryId=${lab.repositoryId}`)).body as { restorePointId: string; parentId: string | null }[];
    const pointCount = async () => (await list()).length;
    const depthOf = async (restorePointId: string) => {
      const byId = new Map((await list()).map((p) => [p.restorePointId, p]));
      let n = 0;
      for (let p = byId.get(restorePointId); p; p = p.parentId ? byId.get(p.parentId) : undefined) n++;
      return n;
    };

    // each backup after a 64 KiB write past the filesystem, somewhere else each time
    const change = (i: number) => run('qemu-io', ['-f', 'qcow2', '-c', `write -P ${(i % 250) + 1} ${256 * MiB + ((i * 977) % 4000) * 64 * 1024} 64K`, disk]);
    const fileBytes = async (restorePointId: string) => ((await lab.api('GET', `/api/v1/restore-points/${restorePointId}`)).body as { disks: { fileBytes: number }[] }).disks[0].fileBytes;
    const first = await lab.backup('chain-vm', 'auto');
    await change(0);
    let newest = (await lab.backup('chain-vm', 'auto')).job.restorePointId as string;
    let depth = 2;
    const figures: Figures[] = [{ chain: depth, ...(await measure(lab, newest, sha, runs)) }];
    const repoRoot = join(dir, 'repo');
    const shortParts = await chainParts(lab, repoRoot, newest, runs, dir);
    let deepParts: { openMs: number; readMs: number } | null = null;
    const incrementals: number[] = [];
    const synthetic: { ms: number; restorePointId: string }[] = [];
    const t = Date.now();
    for (let i = 1; i < points; i++) {
      await change(i);
      const backup = await lab.backup('chain-vm', 'auto');
      newest = backup.job.restorePointId;
      if (backup.job.type === 'incremental') {
        depth++;
        incrementals.push(backup.ms);
      } else {
        depth = 1;
        synthetic.push({ ms: backup.ms, restorePointId: newest });
      }
      // the worst case the limit allows: the newest point of the deepest chain
      if (depth === limit && !deepParts && depth > 2) {
        if ((await depthOf(newest)) !== depth) throw new Error(`the chain the bench counted (${depth}) is not the one recorded`);
        figures.push({ chain: depth, ...(await measure(lab, newest, sha, runs)) });
        deepParts = await chainParts(lab, repoRoot, newest, runs, dir);
      }
    }
    const all = await pointCount();
    if ((await depthOf(newest)) !== depth) throw new Error(`the chain the bench counted (${depth}) is not the one recorded`);
    out(`${points - 1} more backups in ${((Date.now() - t) / 1000).toFixed(0)} s: ${incrementals.length} incrementals (median ${median(incrementals).toFixed(0)} ms), ${synthetic.length} synthetic fulls (median ${synthetic.length ? median(synthetic.map((b) => b.ms)).toFixed(0) : '-'} ms); the first full ${first.ms.toFixed(0)} ms`);
    if (synthetic.length) out(`  files: the first full ${((await fileBytes(first.job.restorePointId)) / MiB).toFixed(1)} MiB, a synthetic full ${((await fileBytes(synthetic[0].restorePointId)) / MiB).toFixed(1)} MiB, an incremental ${((await fileBytes(newest)) / MiB).toFixed(2)} MiB`);
    out(`the newest of ${all} points reads through a chain of ${depth}`);
    figures.push({ chain: depth, ...(await measure(lab, newest, sha, runs)) });
    const newestParts = await chainParts(lab, repoRoot, newest, runs, dir);

    // retention removes the oldest points until `keep` remain
    const policy = await lab.api('POST', '/api/v1/policies', { name: 'chain', vms: { ids: ['chain-vm'] }, repositoryId: lab.repositoryId, schedule: { cron: '0 3 1 1 *', timezone: 'UTC' }, retention: { keepLast: keep }, rpoHours: 24, confirmPrune: true });
    if (policy.status !== 201) throw new Error(`policy refused: ${JSON.stringify(policy.body)}`);
    const pruneStarted = Date.now();
    const pruned = await lab.api('POST', `/api/v1/policies/${policy.body.policyId}/prune`);
    if (pruned.status !== 200) throw new Error(`prune refused: ${JSON.stringify(pruned.body)}`);
    await lab.until(async () => (await pointCount()) <= keep, 1_800_000, `the points to be pruned to ${keep}`, 500);
    out(`retention (keepLast ${keep}) removed ${all - (await pointCount())} points in ${((Date.now() - pruneStarted) / 1000).toFixed(1)} s`);
    figures.push({ chain: await depthOf(newest), ...(await measure(lab, newest, sha, runs)) });

    const base = figures[0];
    const labels = [
      'a chain of 2',
      ...(deepParts ? [`the deepest the limit allows (point ${limit} of its chain)`] : []),
      `the newest of ${all} points`,
      `the same after retention kept ${keep}`,
    ];
    out(`\nnewest point, medians of ${runs} (ratio to the chain of 2; goal <= 2):`);
    out('| the point | points in its chain | mount | download 64 MiB | verify |');
    out('|---|---|---|---|---|');
    figures.forEach((f, i) =>
      out(`| ${labels[i]} | ${f.chain} | ${f.mountMs.toFixed(0)} ms (${(f.mountMs / base.mountMs).toFixed(2)}) | ${f.downloadMs.toFixed(0)} ms (${(f.downloadMs / base.downloadMs).toFixed(2)}) | ${f.verifyMs.toFixed(0)} ms (${(f.verifyMs / base.verifyMs).toFixed(2)}) |`),
    );
    for (const [what, parts, chain] of [...(deepParts ? [['the deepest', deepParts, limit] as const] : []), ['the newest', newestParts, depth] as const]) {
      out(`qemu alone, ${what} (${chain} points) against 2: opening it ${(parts.openMs / shortParts.openMs).toFixed(2)} times (${parts.openMs.toFixed(0)} ms against ${shortParts.openMs.toFixed(0)}), reading it ${(parts.readMs / shortParts.readMs).toFixed(2)} times (${parts.readMs.toFixed(0)} ms against ${shortParts.readMs.toFixed(0)})`);
    }
    out(`load average at end: ${load()}`);
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
