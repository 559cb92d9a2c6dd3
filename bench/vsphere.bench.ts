import { ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VsphereClient, type VsphereVm } from '../src/agent/sources/vsphere/vsphere-client';
import { benchExportArgs, nbdcopyCandidates, settle } from './datapath.bench';
import { QEMU_NBD_ENV } from '../src/qemu/qemu-nbd-launcher';
import { freePort } from '../test/support/processes';
import { flatVmdkDescriptor, startVcsim, type Vcsim } from '../test/support/vcsim-lab';
import { cpuSeconds, Lab, phases, postgresCpu, qemuReaped, qemuUnder, statusKiB, stopPid, summarizePhases } from './backup.bench';
import { median } from './stats';

/*
 * The agent's VMware vSphere source end to end against govmomi's simulator vcsim (test/support/vcsim-lab.ts, its
 * SIMULATED changed block tracking), next to the same data moved by standard tools between the same kinds of
 * endpoints in the same run. vcsim runs on this machine: its datastore HTTPS server (Go's http.FileServer over
 * TLS, reading the flat files from the page cache) serves the data and is part of what is measured.
 *
 * One VM (DC0_H0_VM0) gets two disks of SENDENSE_BENCH_VSPHERE_MIB MiB (default 512), the first half of each random,
 * the rest zeroes, uploaded with PUT through vcsim's datastore HTTP (its model's 1 MiB disk gets zeroes). A hub (its
 * embedded PostgreSQL) and an agent (`agent run --vsphere`) run from dist/. Each round: a full (`type: 'full'`; the
 * first turns CBT on), then 64 MiB (at most an eighth of the disk) of one disk rewritten in place on the datastore
 * directory (256 KiB pieces spread over its data half), then an incremental.
 *
 * The reference, in each round just before the backup it is compared with: `nbdkit curl` (read-only, from the
 * same datastore URL, HTTPS without verifying vcsim's self-signed certificate, basic auth) with the extentlist
 * filter listing exactly the ranges CBT reports to the agent (the data half for the full, the changed pieces for the
 * incremental; everything else reads as a hole), the multi-conn filter (mode unsafe: its default emulation needs a
 * flush the curl plugin lacks; a read-only export shows every connection the same bytes) and the stats filter (what
 * was read from vcsim), copied by `nbdcopy --target-is-zero` into a writable qemu-nbd of a new qcow2 with the hub's
 * own backup-target arguments (TCP, TLS with a pre-shared key, --cache=none where the filesystem allows it,
 * --discard=unmap --detect-zeroes=unmap). The disks are copied at once, as the agent copies them. nbdcopy's options:
 * the fastest, tried once each first, of nbdcopyCandidates() and a few more for the full, and for the incremental of
 * those that read only the changed ranges (nbdcopy reads whole request-size chunks around any data extent: only
 * 64 KiB requests, the CBT block, read exactly the ranges). Its fixed cost (a copy with no range) is shown apart.
 * At the end: a snapshot of the VM alone (what vcsim's simulated CBT costs every backup: it hashes each flat file).
 *
 * Knobs: SENDENSE_BENCH_VSPHERE_MIB (each data disk, default 512), SENDENSE_BENCH_RUNS (rounds, default 3),
 * SENDENSE_BENCH_NBDCOPY_OPTIONS (the full reference's options instead of its search), SENDENSE_BENCH_DIR.
 */

const run = promisify(execFile);
const MiB = 1024 * 1024;
const KiB = 1024;
const CBT_BLOCK = 64 * KiB;
const PIECE = 256 * KiB;
const out = (line: string) => process.stdout.write(`${line}\n`);
const rate = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const s2 = (n: number) => n.toFixed(2);

type Range = { offset: number; length: number };

interface BenchDisk {
  diskId: string;
  size: number;
  /** The flat file on vcsim's datastore directory, and its datastore URL. */
  flat: string;
  url: string;
}

/** One copy of the reference: wall time of the nbdcopy runs (all disks at once), and the CPU its processes spent. */
interface RefRun {
  ms: number;
  /** What CBT reported (the ranges listed), and what nbdkit read from vcsim (its stats filter). */
  bytes: number;
  read: number;
  cpu: { nbdkit: number; nbdcopy: number; qemuNbd: number; vcsim: number };
}

/** One backup job through hub + agent. */
interface JobRun {
  ms: number;
  bytes: number;
  setup: number;
  transfer: number;
  finish: number;
  /** The DiskTransferCompleted events' durationMs (the agent's copy of each disk), by disk. */
  durations: { diskId: string; durationMs: number; bytesWritten: number }[];
  cpu: { hub: number; hubQemu: number; postgres: number; agent: number; vcsim: number };
  timeline: string;
}

const refCpu = (r: RefRun) => r.cpu.nbdkit + r.cpu.nbdcopy + r.cpu.qemuNbd + r.cpu.vcsim;
/** Hub node + its qemu-nbd and qemu-img + agent + vcsim (its PostgreSQL shown apart, as the other benches do). */
const jobCpu = (j: JobRun) => j.cpu.hub + j.cpu.hubQemu + j.cpu.agent + j.cpu.vcsim;
/** The copy's own time: the disks are copied at once, so the longest one. */
const copyMs = (j: JobRun) => Math.max(...j.durations.filter((d) => d.bytesWritten > 0).map((d) => d.durationMs), 1);

const reapedByUs = () => cpuSeconds(process.pid, true) - cpuSeconds(process.pid);
const cpuOr0 = (pid: number) => {
  try {
    return cpuSeconds(pid);
  } catch {
    return 0;
  }
};

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(killer);
}

/** Writable qemu-nbd of a new qcow2 with the hub's backup-target arguments (TCP, TLS-PSK, --cache=none where possible). */
async function hubLikeTarget(dir: string, name: string, size: number, pskDir: string): Promise<{ uri: string; pid: number; file: string }> {
  const file = join(dir, `${name}.qcow2`);
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(size)]);
  const port = await freePort();
  const pidFile = join(dir, `${name}.qemu-nbd.pid`);
  await run('qemu-nbd', benchExportArgs(port, file, pidFile, { readOnly: false, tls: { pskDir, bind: '127.0.0.1' } }), { env: { ...process.env, ...QEMU_NBD_ENV } });
  return { uri: `nbds://sendense@127.0.0.1:${port}/disk?tls-psk-file=${join(pskDir, 'keys.psk')}`, pid: Number(readFileSync(pidFile, 'utf8').trim()), file };
}

/** nbdkit's curl plugin serving the flat file read-only on a Unix socket, its extents the given ranges (the rest holes). */
async function nbdkitCurl(dir: string, name: string, vcsim: Vcsim, disk: BenchDisk, ranges: Range[], passwordFile: string): Promise<{ uri: string; child: ChildProcess; statsFile: string }> {
  const extents = join(dir, `${name}.extents`);
  writeFileSync(extents, ranges.map((r) => `${r.offset} ${r.length}\n`).join(''));
  const socket = join(dir, `${name}.sock`);
  const pidFile = join(dir, `${name}.nbdkit.pid`);
  // the stats filter, next to the plugin, counts what was read from vcsim (written when nbdkit exits)
  const statsFile = join(dir, `${name}.stats`);
  for (const f of [socket, pidFile, statsFile]) rmSync(f, { force: true });
  const child = spawn(
    'nbdkit',
    ['-f', '-r', '--exit-with-parent', '-U', socket, '-P', pidFile, '--filter=multi-conn', '--filter=extentlist', '--filter=stats', 'curl', `url=${disk.url}`, `user=${vcsim.user}`, `password=+${passwordFile}`, 'sslverify=false', `extentlist=${extents}`, 'multi-conn-mode=unsafe', `statsfile=${statsFile}`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  for (let i = 0; !existsSync(pidFile); i++) {
    if (child.exitCode !== null || i > 1000) throw new Error(`nbdkit did not start: ${stderr}`);
    await sleep(10);
  }
  return { uri: `nbd+unix:///?socket=${socket}`, child, statsFile };
}

/** Bytes the stats filter saw read ("read: N ops, T s, 256.00 MiB, ..."); 0 without reads. */
function statsReadBytes(file: string): number {
  const m = /^read: \d+ ops, [\d.]+ s, ([\d.]+) (B|KiB|MiB|GiB|TiB)\b/m.exec(existsSync(file) ? readFileSync(file, 'utf8') : '');
  if (!m) return 0;
  return Math.round(Number(m[1]) * { B: 1, KiB: KiB, MiB, GiB: 1024 * MiB, TiB: 1024 * 1024 * MiB }[m[2] as 'B']);
}

/** The reference: each disk's ranges copied by nbdcopy from nbdkit curl into a hub-like target, all disks at once (no range: nbdcopy's fixed cost alone). */
async function referenceCopy(dir: string, vcsim: Vcsim, passwordFile: string, pskDir: string, work: { disk: BenchDisk; ranges: Range[] }[], options: string[], keep = false): Promise<RefRun & { targets: string[] }> {
  const started: { source: { child: ChildProcess; statsFile: string }; target: { pid: number; file: string } }[] = [];
  let result: Omit<RefRun, 'read'> | undefined;
  try {
    const copies: { source: string; target: string }[] = [];
    for (const [i, w] of work.entries()) {
      const target = await hubLikeTarget(dir, `ref-${i}`, w.disk.size, pskDir);
      const source = await nbdkitCurl(dir, `ref-${i}`, vcsim, w.disk, w.ranges, passwordFile);
      started.push({ source, target });
      copies.push({ source: source.uri, target: target.uri });
    }
    await settle();
    const sample = () => ({
      nbdkit: sum(started.map((s) => cpuOr0(s.source.child.pid!))),
      nbdcopy: reapedByUs(),
      qemuNbd: sum(started.map((s) => cpuOr0(s.target.pid))),
      vcsim: cpuSeconds(vcsim.pid),
    });
    const before = sample();
    const began = process.hrtime.bigint();
    await Promise.all(copies.map((c) => run('nbdcopy', ['--target-is-zero', ...options, c.source, c.target])));
    const ms = Number(process.hrtime.bigint() - began) / 1e6;
    const after = sample();
    result = {
      ms,
      bytes: sum(work.flatMap((w) => w.ranges.map((r) => r.length))),
      cpu: { nbdkit: after.nbdkit - before.nbdkit, nbdcopy: after.nbdcopy - before.nbdcopy, qemuNbd: after.qemuNbd - before.qemuNbd, vcsim: after.vcsim - before.vcsim },
    };
  } finally {
    for (const s of started) {
      await stopChild(s.source.child);
      await stopPid(s.target.pid);
      if (!keep) rmSync(s.target.file, { force: true });
    }
  }
  return { ...result, read: sum(started.map((s) => statsReadBytes(s.source.statsFile))), targets: started.map((s) => s.target.file) };
}

/** nbdcopy's options tried once each on `work`; the fastest of those that read only the ranges listed is the reference's. */
async function fastestOptions(what: string, candidates: string[][], copy: (options: string[]) => Promise<RefRun>): Promise<string[]> {
  let best: { options: string[]; ms: number } | undefined;
  for (const options of candidates) {
    const r = await copy(options);
    const exact = r.read === r.bytes;
    out(`  ${what}: nbdcopy ${options.join(' ') || '(defaults)'}: ${rate(r.bytes, r.ms).toFixed(0)} MiB/s, read ${(r.read / MiB).toFixed(0)} MiB from vcsim${exact ? '' : ` for ${(r.bytes / MiB).toFixed(0)} MiB of ranges: not eligible`}`);
    if (exact && (!best || r.ms < best.ms)) best = { options, ms: r.ms };
  }
  if (!best) throw new Error(`no nbdcopy options read only the ranges of the ${what}`);
  return best.options;
}

/** A backup through hub + agent, with the CPU of every process that took part. */
async function sendenseJob(lab: Lab, vcsim: Vcsim, vmId: string, type: 'full' | 'incremental'): Promise<JobRun> {
  const hubPid = lab.hub!.child.pid!;
  const agentPid = lab.agent!.child.pid!;
  const qemu0 = [...qemuUnder(hubPid), ...qemuUnder(agentPid)];
  const sample = () => ({ hub: cpuSeconds(hubPid), hubAll: cpuSeconds(hubPid, true), postgres: postgresCpu(hubPid), agent: cpuSeconds(agentPid, true), vcsim: cpuSeconds(vcsim.pid) });
  const before = sample();
  await settle();
  const b = await lab.backup(vmId, type);
  await qemuReaped(hubPid, qemu0);
  await qemuReaped(agentPid, qemu0);
  const after = sample();
  if (b.job.type !== type) throw new Error(`the ${type} backup ran as ${b.job.type}: ${b.job.typeReason}`);
  const durations = b.story.filter((e) => e.type === 'DiskTransferCompleted').map((e) => ({ diskId: String(e.data.diskId), durationMs: Number(e.data.durationMs), bytesWritten: Number(e.data.bytesWritten) }));
  const p = summarizePhases(b.story, b.requestedAt);
  return {
    ms: b.ms,
    bytes: sum(durations.map((d) => d.bytesWritten)),
    ...p,
    durations,
    cpu: {
      hub: after.hub - before.hub,
      hubQemu: after.hubAll - after.hub - (before.hubAll - before.hub),
      postgres: after.postgres - before.postgres,
      agent: after.agent - before.agent,
      vcsim: after.vcsim - before.vcsim,
    },
    timeline: phases(b.story, b.requestedAt),
  };
}

/**
 * `bytes` of the disk rewritten with new random data in place, PIECE at a time, one piece per stride across its data
 * half (where '*' already reports data, so every round's full reads the same), 64 KiB-aligned: the CBT ranges.
 */
function changedRanges(disk: BenchDisk, bytes: number, round: number): Range[] {
  const pieces = bytes / PIECE;
  const stride = disk.size / 2 / pieces;
  const slots = (stride - PIECE) / CBT_BLOCK + 1;
  return Array.from({ length: pieces }, (_, i) => ({ offset: i * stride + ((i * 7919 + round * 31) % slots) * CBT_BLOCK, length: PIECE }));
}

function rewrite(disk: BenchDisk, ranges: Range[]): void {
  const fd = openSync(disk.flat, 'r+');
  try {
    for (const r of ranges) writeSync(fd, randomBytes(r.length), 0, r.length, r.offset);
  } finally {
    closeSync(fd);
  }
}

function pskDirIn(dir: string): string {
  const pskDir = join(dir, 'psk');
  mkdirSync(pskDir, { mode: 0o700 });
  writeFileSync(join(pskDir, 'keys.psk'), `sendense:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  return pskDir;
}

const refLine = (r: RefRun) => `${r.ms.toFixed(0)} ms, ${rate(r.bytes, r.ms).toFixed(0)} MiB/s of ${(r.bytes / MiB).toFixed(0)} MiB (read from vcsim ${(r.read / MiB).toFixed(0)} MiB); CPU s nbdkit ${s2(r.cpu.nbdkit)} + nbdcopy ${s2(r.cpu.nbdcopy)} + qemu-nbd ${s2(r.cpu.qemuNbd)} + vcsim ${s2(r.cpu.vcsim)} = ${s2(refCpu(r))}`;
const jobLine = (j: JobRun) =>
  `${j.ms.toFixed(0)} ms end to end, ${rate(j.bytes, j.ms).toFixed(0)} MiB/s of ${(j.bytes / MiB).toFixed(0)} MiB written (setup ${j.setup} ms, transfer ${j.transfer} ms, finish ${j.finish} ms); ` +
  `copy durationMs ${j.durations.map((d) => `${d.diskId} ${d.durationMs} (${(d.bytesWritten / MiB).toFixed(0)} MiB)`).join(', ')} = ${rate(j.bytes, copyMs(j)).toFixed(0)} MiB/s; ` +
  `CPU s hub ${s2(j.cpu.hub)} + its qemu-nbd/qemu-img ${s2(j.cpu.hubQemu)} + agent ${s2(j.cpu.agent)} + vcsim ${s2(j.cpu.vcsim)} = ${s2(jobCpu(j))} (hub's PostgreSQL ${s2(j.cpu.postgres)} more)`;

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => `  ${r.map((cell, c) => cell.padEnd(widths[c])).join(' | ')}`.trimEnd());
}

export async function runVsphereBench(): Promise<void> {
  const rounds = Number(process.env.SENDENSE_BENCH_RUNS ?? 3);
  const diskMib = Number(process.env.SENDENSE_BENCH_VSPHERE_MIB ?? 512);
  const size = diskMib * MiB;
  if (!Number.isInteger(diskMib) || diskMib < 16 || diskMib % 16) throw new Error(`SENDENSE_BENCH_VSPHERE_MIB must be a multiple of 16, at least 16 (not ${diskMib})`);
  const changed = Math.min(64 * MiB, size / 8);
  const t0 = Date.now();
  const dir = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? tmpdir(), 'sendense-vsphere-bench-'));
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'lab'));
  mkdirSync(join(dir, 'ref'));
  const lab = new Lab(join(dir, 'lab'));
  let vcsim: Vcsim | undefined;
  let client: VsphereClient | undefined;
  try {
    out(`load average at start: ${load()} (${(await run('nproc')).stdout.trim()} cores)`);
    vcsim = await startVcsim({});
    client = await VsphereClient.connect({ sdkUrl: vcsim.url, user: vcsim.user, password: vcsim.password, thumbprint: vcsim.sha256 });
    let vm: VsphereVm = (await client.listVms()).find((v) => v.name === 'DC0_H0_VM0')!;
    const vmDir = vm.disks[0].fileName.replace(/^\[[^\]]+\] /, '').split('/')[0];
    for (const n of [1, 2]) await client.addDisk(vm.ref, { capacityBytes: size, fileName: `[LocalDS_0] ${vmDir}/bench${n}.vmdk` });
    vm = (await client.findVm(vm.instanceUuid))!;
    const disks: BenchDisk[] = [];
    let putMs = 0;
    let putBytes = 0;
    for (const d of vm.disks) {
      const path = d.fileName.replace(/^\[[^\]]+\] /, '');
      const flat = path.replace(/\.vmdk$/, '-flat.vmdk');
      const url = client.datastoreUrl(vm.datacenter, 'LocalDS_0', flat);
      await client.putFile(client.datastoreUrl(vm.datacenter, 'LocalDS_0', path), Buffer.from(flatVmdkDescriptor(flat.split('/').pop()!, d.capacityBytes)));
      // the model's own small disk: zeroes (a disk without content would fail the backup); ours: half random, half zeroes
      const content = d.capacityBytes === size ? Buffer.concat([randomBytes(size / 2), Buffer.alloc(size / 2)]) : Buffer.alloc(d.capacityBytes);
      const began = Date.now();
      await client.putFile(url, content);
      if (d.capacityBytes === size) {
        putMs += Date.now() - began;
        putBytes += content.length;
        disks.push({ diskId: `disk-${d.key}`, size, flat: join(vcsim.datastores[0].path, flat), url: url.toString() });
      }
    }
    if (disks.length !== 2) throw new Error(`expected the two ${diskMib} MiB disks on ${vm.name}, found ${disks.length}`);
    out(`vcsim (govmomi 0.24.2's simulator, on this machine, CBT simulated): VM ${vm.name} given two ${diskMib} MiB disks (first half random, the rest zeroes), uploaded with PUT through vcsim's datastore HTTPS: ${(putBytes / MiB).toFixed(0)} MiB in ${putMs} ms (${rate(putBytes, putMs).toFixed(0)} MiB/s); its model's ${vm.disks.filter((d) => d.capacityBytes !== size).map((d) => `${d.capacityBytes / MiB} MiB`).join(', ')} disk holds zeroes`);

    const secrets = join(dir, 'secrets');
    mkdirSync(secrets, { mode: 0o700 });
    const passwordFile = join(secrets, 'vsphere.password');
    writeFileSync(passwordFile, vcsim.password, { mode: 0o600 });
    const pskDir = pskDirIn(dir);
    const refDir = join(dir, 'ref');

    let t = Date.now();
    await lab.start(['--vsphere', vcsim.url, '--vsphere-user', vcsim.user, '--vsphere-password-file', passwordFile, '--vsphere-thumbprint', vcsim.sha256]);
    out(`hub (embedded PostgreSQL) and agent (agent run --vsphere) started, the agent connected with vcsim's ${((await lab.api('GET', '/api/v1/vms')).body as unknown[]).length} VMs, in ${Date.now() - t} ms`);

    const fullWork = disks.map((disk) => ({ disk, ranges: [{ offset: 0, length: size / 2 }] }));
    const fullBytes = sum(fullWork.flatMap((w) => w.ranges.map((r) => r.length)));
    const candidates = process.env.SENDENSE_BENCH_NBDCOPY_OPTIONS !== undefined
      ? nbdcopyCandidates()
      : [...nbdcopyCandidates(), ['--connections=8', '--request-size=4194304'], ['--connections=8', '--requests=16', '--request-size=1048576'], ['--connections=8', '--requests=4', '--request-size=16777216']];
    out(`reference: nbdkit curl (+ extentlist, multi-conn, stats filters) -> nbdcopy --target-is-zero -> qemu-nbd with the hub's target arguments (TLS-PSK, --cache=none), both disks at once, ${(fullBytes / MiB).toFixed(0)} MiB (the data halves); options tried once each:`);
    const sim = vcsim;
    const options = await fastestOptions('full', candidates, (o) => referenceCopy(refDir, sim, passwordFile, pskDir, fullWork, o));
    // nbdcopy reads whole request-size chunks around any data extent (and writes what it read): only requests of the
    // CBT block (64 KiB, which every changed range is aligned to) read exactly the changed ranges
    const incCandidates = [['--request-size=1048576'], ['--request-size=262144'], ...[['--connections=1'], ['--connections=4'], ['--connections=8'], ['--connections=4', '--requests=32'], ['--connections=8', '--requests=32']].map((o) => [...o, `--request-size=${CBT_BLOCK}`])];
    const incOptions = await fastestOptions('incremental', incCandidates, (o) => referenceCopy(refDir, sim, passwordFile, pskDir, [{ disk: disks[0], ranges: changedRanges(disks[0], changed, 0) }], o));
    out(`reference options: full ${options.join(' ') || '(defaults)'}; incremental ${incOptions.join(' ')}`);
    // once: what the reference wrote is the disk (its data half copied, the rest a hole that reads zeroes)
    const { targets } = await referenceCopy(refDir, vcsim, passwordFile, pskDir, fullWork.slice(0, 1), options, true);
    if (!targets.length) throw new Error('the reference made no copy to check');
    await run('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', disks[0].flat, targets[0]]);
    rmSync(targets[0], { force: true });
    out(`  checked: qemu-img compare of one reference copy with its flat file: identical`);
    const fixed = async (work: { disk: BenchDisk; ranges: Range[] }[], o: string[]) => {
      const runs: number[] = [];
      for (let i = 0; i < 3; i++) runs.push((await referenceCopy(refDir, sim, passwordFile, pskDir, work, o)).ms);
      return median(runs).toFixed(0);
    };
    out(`  the reference with no range to copy (nbdcopy starting, connecting with TLS, asking the extents, flushing), median of 3: with the full's options and both disks ${await fixed(disks.map((disk) => ({ disk, ranges: [] })), options)} ms, with the incremental's and one disk ${await fixed([{ disk: disks[0], ranges: [] }], incOptions)} ms`);

    out(`${rounds} rounds, each: reference full; Sendense full (type 'full'); ${(changed / MiB).toFixed(0)} MiB of ${disks[0].diskId} rewritten on the datastore directory (${changed / PIECE} pieces of ${PIECE / KiB} KiB, one per ${size / 2 / (changed / PIECE) / KiB} KiB of its data half); reference of those ranges; Sendense incremental`);
    const results = { full: { ref: [] as RefRun[], job: [] as JobRun[] }, incremental: { ref: [] as RefRun[], job: [] as JobRun[] } };
    for (let i = 0; i < rounds; i++) {
      const refFull = await referenceCopy(refDir, vcsim, passwordFile, pskDir, fullWork, options);
      const full = await sendenseJob(lab, vcsim, vm.instanceUuid, 'full');
      if (full.bytes !== fullBytes) throw new Error(`the full wrote ${full.bytes} bytes, not the ${fullBytes} CBT's '*' reports`);
      const ranges = changedRanges(disks[0], changed, i);
      rewrite(disks[0], ranges);
      const refInc = await referenceCopy(refDir, vcsim, passwordFile, pskDir, [{ disk: disks[0], ranges }], incOptions);
      const inc = await sendenseJob(lab, vcsim, vm.instanceUuid, 'incremental');
      if (inc.bytes !== changed) throw new Error(`the incremental wrote ${inc.bytes} bytes, not the ${changed} changed`);
      results.full.ref.push(refFull);
      results.full.job.push(full);
      results.incremental.ref.push(refInc);
      results.incremental.job.push(inc);
      out(`  round ${i + 1}, full: reference ${refLine(refFull)}`);
      out(`    Sendense ${jobLine(full)}`);
      out(`    timeline (ms since the previous mark): ${full.timeline}`);
      out(`  round ${i + 1}, incremental: reference ${refLine(refInc)}`);
      out(`    Sendense ${jobLine(inc)}`);
      out(`    timeline (ms since the previous mark): ${inc.timeline}`);
    }

    out(`medians of ${rounds} rounds (ratios: medians of each round's Sendense MiB/s / that round's reference MiB/s):`);
    const rows = [['backup', 'data', 'Sendense end to end', 'Sendense copy (durationMs)', 'reference nbdcopy', 'ratio end to end', 'ratio copy']];
    const cpuRows = [['backup', 'Sendense: hub', 'its qemu-nbd', 'agent', 'vcsim', 'sum', "(hub's PostgreSQL)", 'reference: nbdkit', 'nbdcopy', 'qemu-nbd', 'vcsim', 'sum']];
    for (const type of ['full', 'incremental'] as const) {
      const { ref, job } = results[type];
      const m = (xs: number[]) => median(xs);
      const bytes = m(job.map((j) => j.bytes));
      const e2e = job.map((j, i) => rate(j.bytes, j.ms) / rate(ref[i].bytes, ref[i].ms));
      const copy = job.map((j, i) => rate(j.bytes, copyMs(j)) / rate(ref[i].bytes, ref[i].ms));
      rows.push([
        type,
        `${(bytes / MiB).toFixed(0)} MiB`,
        `${m(job.map((j) => j.ms)).toFixed(0)} ms, ${m(job.map((j) => rate(j.bytes, j.ms))).toFixed(0)} MiB/s`,
        `${m(job.map(copyMs)).toFixed(0)} ms, ${m(job.map((j) => rate(j.bytes, copyMs(j)))).toFixed(0)} MiB/s`,
        `${m(ref.map((r) => r.ms)).toFixed(0)} ms, ${m(ref.map((r) => rate(r.bytes, r.ms))).toFixed(0)} MiB/s`,
        `${s2(m(e2e))} (${e2e.map(s2).join(', ')})`,
        `${s2(m(copy))} (${copy.map(s2).join(', ')})`,
      ]);
      cpuRows.push([
        type,
        s2(m(job.map((j) => j.cpu.hub))),
        s2(m(job.map((j) => j.cpu.hubQemu))),
        s2(m(job.map((j) => j.cpu.agent))),
        s2(m(job.map((j) => j.cpu.vcsim))),
        s2(m(job.map(jobCpu))),
        s2(m(job.map((j) => j.cpu.postgres))),
        s2(m(ref.map((r) => r.cpu.nbdkit))),
        s2(m(ref.map((r) => r.cpu.nbdcopy))),
        s2(m(ref.map((r) => r.cpu.qemuNbd))),
        s2(m(ref.map((r) => r.cpu.vcsim))),
        s2(m(ref.map(refCpu))),
      ]);
    }
    for (const line of table(rows)) out(line);
    out(`CPU seconds per backup, medians (each column on its own):`);
    for (const line of table(cpuRows)) out(line);

    // What vcsim's simulated CBT adds to every backup: a snapshot reads and hashes each disk's whole flat file.
    const snaps: { ms: number; cpu: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const cpu0 = cpuSeconds(vcsim.pid);
      const began = Date.now();
      const snap = await client.createSnapshot(vm.ref, `bench-${i}`, 'vsphere bench: the cost of a snapshot alone', { memory: false, quiesce: false });
      const ms = Date.now() - began;
      snaps.push({ ms, cpu: cpuSeconds(vcsim.pid) - cpu0 });
      await client.removeSnapshot(snap, { consolidate: true });
    }
    out(`a snapshot of the VM alone (CreateSnapshot_Task with CBT on; vcsim's simulated CBT reads and hashes each disk's flat file, ${((2 * size + MiB) / MiB).toFixed(0)} MiB), median of 3: ${median(snaps.map((s) => s.ms)).toFixed(0)} ms, vcsim CPU ${s2(median(snaps.map((s) => s.cpu)))} s`);
    out(`peak RSS: vcsim ${(statusKiB(vcsim.pid, 'VmHWM') / 1024).toFixed(0)} MiB, hub ${(statusKiB(lab.hub!.child.pid!, 'VmHWM') / 1024).toFixed(0)} MiB, agent ${(statusKiB(lab.agent!.child.pid!, 'VmHWM') / 1024).toFixed(0)} MiB`);
    t = Date.now();
    out(`load average at end: ${load()}; the whole bench ${((t - t0) / 1000).toFixed(0)} s`);
  } finally {
    await lab.close();
    await client?.logout().catch(() => undefined);
    await vcsim?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
