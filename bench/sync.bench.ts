import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { nbdcopyCandidates, settle } from './datapath.bench';
import { buildQemuNbdArgs, buildSocketExportArgs, supportsDirectIo } from '../src/qemu/qemu-nbd-args';
import { QEMU_NBD_ENV } from '../src/qemu/qemu-nbd-launcher';
import { freePort } from '../test/support/processes';
import { Lab, randomDataVm } from './backup.bench';

/*
 * Hub-to-hub sync of a full and of an incremental point, two hub processes on this machine (each on its own
 * embedded PostgreSQL), next to nbdcopy of the same data between the same kinds of exports in the same run: from a
 * read-only qemu-nbd with TLS 1.3 and a pre-shared key (the kind of the primary's point export) of the point's own
 * file alone (its backing left out, so exactly the clusters the sync sends) into a writable qemu-nbd on a Unix
 * socket of a new qcow2 written around the page cache (the kind of the second hub's target), nbdcopy's fastest options of nbdcopyCandidates().
 * The sync's figure for a point runs from SyncPointStarted to RestorePointSynced: the digest and configuration
 * files, the copy (each block hashed as it arrives), the comparison that decides whether the point is recorded.
 * What encryption at rest costs a backup is bench/encryption.bench.ts.
 * Knobs: SENDENSE_BENCH_SYNC_MIB (the full's data, default 1024), SENDENSE_BENCH_SYNC_INC_MIB (the incremental's, 256),
 * SENDENSE_BENCH_DIR.
 */

const run = promisify(execFile);
const MiB = 1024 * 1024;
const out = (line: string) => process.stdout.write(`${line}\n`);
const rate = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);

async function runSync(target: Lab, syncJobId: string): Promise<any> {
  const { runId } = (await target.api('POST', `/api/v1/sync-jobs/${syncJobId}/run`)).body;
  let last: any;
  await target.until(async () => {
    last = (await target.api('GET', `/api/v1/sync-jobs/${syncJobId}`)).body.lastRun;
    return last?.runId === runId && last.status !== 'running';
  }, 1_800_000, 'the sync run', 250);
  if (last.status !== 'completed') throw new Error(`sync run failed: ${last.reason}`);
  return last;
}

/** From the point's SyncPointStarted (the job's stream) to its RestorePointSynced (the chain's), on the second hub's clock. */
async function pointMs(target: Lab, syncJobId: string, restorePointId: string, vmId: string): Promise<number> {
  const job = (await target.api('GET', `/api/v1/audit/streams/sync-job-${syncJobId}?limit=1000`)).body.events as { type: string; data: any; time: string }[];
  const chain = (await target.api('GET', `/api/v1/audit/streams/chain-${vmId}-${target.repositoryId}?limit=1000`)).body.events as { type: string; data: any; time: string }[];
  const began = job.filter((e) => e.type === 'SyncPointStarted' && e.data.restorePointId === restorePointId).at(-1)!;
  const recorded = chain.find((e) => e.type === 'RestorePointSynced' && e.data.restorePointId === restorePointId)!;
  return Date.parse(recorded.time) - Date.parse(began.time);
}

/** nbdcopy's fastest options: the point's own file alone behind qemu-nbd with TLS-PSK, into a new qcow2 behind a writable socket export. */
async function nbdcopyLayer(dir: string, file: string, size: number): Promise<{ ms: number; options: string }> {
  const pskDir = join(dir, 'psk');
  mkdirSync(pskDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(pskDir, 'keys.psk'), `bench:${'ab'.repeat(32)}\n`, { mode: 0o600 });
  const port = await freePort();
  const pidFile = join(dir, 'source.pid');
  // the hub's read-only export arguments, with the image opened without its backing file
  const args = buildQemuNbdArgs({ leaseId: 'bench', port, file, format: 'qcow2', readOnly: true, exportName: 'disk', tls: { pskDir, bind: '127.0.0.1' } }, pidFile);
  const image = args.indexOf(file);
  const sourceArgs = ['--fork', ...args.slice(0, image).filter((a, i, all) => !(a === '-f' || all[i - 1] === '-f')), `json:${JSON.stringify({ driver: 'qcow2', file: { driver: 'file', filename: file }, backing: null })}`];
  await run('qemu-nbd', sourceArgs, { env: { ...process.env, ...QEMU_NBD_ENV } });
  const sourcePid = Number(readFileSync(pidFile, 'utf8').trim());
  const source = `nbds://bench@127.0.0.1:${port}/disk?tls-psk-file=${join(pskDir, 'keys.psk')}`;
  let best = { ms: Infinity, options: '' };
  try {
    for (const options of nbdcopyCandidates()) {
      const targetFile = join(dir, 'nbdcopy-target.qcow2');
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', targetFile, String(size)]);
      const socket = join(dir, 'nbdcopy-target.sock');
      const targetPid = join(dir, 'nbdcopy-target.pid');
      await run('qemu-nbd', ['--fork', ...buildSocketExportArgs({ file: targetFile, format: 'qcow2', socket, exportName: 'disk', shared: 8, writable: { directIo: supportsDirectIo(targetFile) } }, targetPid)], { env: { ...process.env, ...QEMU_NBD_ENV } });
      const pid = Number(readFileSync(targetPid, 'utf8').trim());
      try {
        await settle();
        const began = process.hrtime.bigint();
        await run('nbdcopy', ['--target-is-zero', ...options, source, `nbd+unix:///disk?socket=${socket}`]);
        const ms = Number(process.hrtime.bigint() - began) / 1e6;
        if (ms < best.ms) best = { ms, options: options.join(' ') || '(defaults)' };
      } finally {
        await stopPid(pid);
        rmSync(targetFile, { force: true });
      }
    }
  } finally {
    await stopPid(sourcePid);
  }
  return best;
}

async function stopPid(pid: number): Promise<void> {
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 500; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Bytes the file itself holds as data: what a layer copy reads. */
async function ownData(file: string): Promise<number> {
  const map = JSON.parse((await run('qemu-img', ['map', '-U', '--output=json', file])).stdout) as { length: number; depth: number; data: boolean }[];
  return map.filter((e) => e.depth === 0 && e.data).reduce((n, e) => n + e.length, 0);
}

export async function runSyncBench(): Promise<void> {
  const fullMib = Number(process.env.SENDENSE_BENCH_SYNC_MIB ?? 1024);
  const incMib = Number(process.env.SENDENSE_BENCH_SYNC_INC_MIB ?? 256);
  const dir = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? tmpdir(), 'sendense-sync-bench-'));
  chmodSync(dir, 0o755);
  const primary = new Lab(join(dir, 'primary'));
  const target = new Lab(join(dir, 'target'), undefined, { hubEnv: { SENDENSE_NBD_PORTS: '14200-14263' } });
  mkdirSync(join(dir, 'primary'));
  mkdirSync(join(dir, 'target'));
  try {
    out(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const vm = await randomDataVm(dir, fullMib, incMib);
    await primary.start(['--inventory', vm.inventory]);
    await target.start([]);

    const full = await primary.backup('vm1', 'full');
    const identity = (await primary.api('GET', '/api/v1/identity')).body;
    const token = (await primary.api('POST', '/api/v1/tokens', { name: 'bench-sync', role: 'sync' })).body.token;
    const remote = await target.api('POST', '/api/v1/remotes', { name: 'primary', url: `ssh://127.0.0.1:${identity.ssh.port}`, token, fingerprint: identity.ssh.hostKeyFingerprint });
    if (remote.status !== 201) throw new Error(`remote refused: ${JSON.stringify(remote.body)}`);
    const job = (await target.api('POST', '/api/v1/sync-jobs', { remoteId: remote.body.remoteId, repositoryId: target.repositoryId })).body.syncJobId;

    const points: { name: string; restorePointId: string }[] = [{ name: 'full', restorePointId: full.job.restorePointId }];
    const first = await runSync(target, job);
    await vm.change();
    const inc = await primary.backup('vm1', 'incremental');
    points.push({ name: 'incremental', restorePointId: inc.job.restorePointId });
    const second = await runSync(target, job);

    const listed = (await primary.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${primary.repositoryId}`)).body as { restorePointId: string; disks: { file: string }[] }[];
    for (const [i, p] of points.entries()) {
      const runOf = i === 0 ? first : second;
      const file = join(dir, 'primary', 'repo', listed.find((x) => x.restorePointId === p.restorePointId)!.disks[0].file);
      const data = await ownData(file);
      const ms = await pointMs(target, job, p.restorePointId, 'vm1');
      const reference = await nbdcopyLayer(join(dir, `nbdcopy-${p.name}`), file, vm.size);
      out(`${p.name}: ${(data / MiB).toFixed(0)} MiB of the point's own data; the sync received ${(runOf.bytesReceived / MiB).toFixed(1)} MiB`);
      out(`  sync (digests fetched, copy hashing each block as it arrives, checked, recorded): ${ms} ms, ${rate(data, ms).toFixed(0)} MiB/s; the whole run ${runOf.startedAt && runOf.finishedAt ? Date.parse(runOf.finishedAt) - Date.parse(runOf.startedAt) : '?'} ms`);
      out(`  nbdcopy of the same data, TLS-PSK export of the point's own file into a socket export of a new qcow2 (${reference.options}): ${reference.ms.toFixed(0)} ms, ${rate(data, reference.ms).toFixed(0)} MiB/s`);
      out(`  ratio sync/nbdcopy throughput: ${(reference.ms / ms).toFixed(2)} (goal >= 0.8)`);
    }
  } finally {
    await target.close();
    await primary.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
