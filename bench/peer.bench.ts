import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureLibvirt, GuestDomain, startGuest } from '../test/fixtures/libvirt/libvirt-guest';
import { cpuSeconds, descendants, Lab, phases, postgresCpu } from './backup.bench';
import { median } from './stats';

/*
 * Sendense against virtnbdbackup (Debian's) on ONE running TCG domain, the two tools taking turns on it (the order
 * alternates per round): vda 64 MiB ext4, vdb with SENDENSE_BENCH_PEER_MIB of random data (default 1536) above the
 * slots the guest keeps writing, and a steady writer in the guest on top of that (SENDENSE_BENCH_PEER_WRITE_MIB MiB of
 * random data every second at scattered places of vdb, default 1; 0 leaves the guest's own small writes only). Per
 * round: a full of each, SENDENSE_BENCH_PEER_WAIT seconds (default 20), an incremental of each; a `sync` before each.
 * virtnbdbackup refuses a domain holding another tool's checkpoint; that refusal alone is switched off (its
 * hasforeignCheckpoint answers none): it then makes, uses and deletes only its own, as it does on its own domain.
 * Clocks: Sendense from the API request until the API reads the job `completed` (woken by the job's event stream,
 * GET /backups/{id}/events, instead of polling, whose answers would cost the hub CPU counted as the backup's), then
 * an fsync of the point's files (`sync FILES`); virtnbdbackup from its start to its exit, then an fsync of its files.
 * CPU: everything the backup runs. Sendense: hub with its qemu-nbd and PostgreSQL, agent with the virsh it runs;
 * virtnbdbackup and its children. Both: libvirtd, and the domain's qemu less its vCPU threads (the export and
 * the guest agent channel). The freeze window is read the same way for both from libvirtd's log: the freeze
 * command sent to the guest agent until the thaw's answer.
 */

const run = promisify(execFile);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const out = (line: string) => process.stdout.write(`${line}\n`);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ADMIN = ['-c', 'libvirtd:///system'];
/** virtnbdbackup (run by the interpreter its script names) with its foreign-checkpoint refusal answered "none": everything else is the packaged tool. */
const VIRTNBDBACKUP = [
  '-c',
  'import runpy, sys; from libvirtnbdbackup.virt.client import client; client.hasforeignCheckpoint = staticmethod(lambda *a: None); sys.argv[0] = "/usr/bin/virtnbdbackup"; runpy.run_path(sys.argv[0], run_name="__main__")',
];

/**
 * A steady writer in the guest, through its agent: `mib` MiB of random data every second into vdb above the guest's
 * slots, each write at the next of a scattered walk over the filled area, synced.
 */
async function startWriter(domain: string, mib: number, fillMib: number): Promise<void> {
  const loop = `i=0; while :; do dd if=/dev/urandom of=/dev/vdb bs=1M count=${mib} seek=$(( 16 + (i * 37) % (${fillMib} - ${mib}) )) conv=notrunc 2>/dev/null; sync; i=$((i + 1)); sleep 1; done`;
  const command = JSON.stringify({ execute: 'guest-exec', arguments: { path: '/bin/sh', arg: ['-c', loop] } });
  await run('virsh', ['-c', 'qemu:///system', 'qemu-agent-command', domain, command]);
}

/** CPU seconds so far of a process and everything under it, live or reaped; 0 once it is gone. */
function treeCpu(pid: number): number {
  let seconds = 0;
  for (const p of [pid, ...descendants(pid)]) {
    try {
      seconds += cpuSeconds(p, true);
    } catch {
      // gone meanwhile: its parent's reaped figure has it
    }
  }
  return seconds;
}

/** The domain's qemu without its vCPU threads: what serving the backup cost it, not what the guest ran. */
function qemuIoCpu(name: string): number {
  const pid = Number(readFileSync(`/run/libvirt/qemu/${name}.pid`, 'utf8').trim());
  let ticks = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (/^CPU \d+\//.test(readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8'))) continue;
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // a thread gone meanwhile
    }
  }
  return ticks / 100;
}

const frozen = (w: { ms: number; parts: string } | null) => ({ freezeMs: w?.ms ?? null, freezeParts: w?.parts });
const libvirtdPid = () => Number(readFileSync('/run/libvirtd.pid', 'utf8').trim());
/** Our own reaped children: virtnbdbackup and what it ran, once it exited. */
const reapedChildren = () => cpuSeconds(process.pid, true) - cpuSeconds(process.pid);

/** Bytes the files take on disk. */
function allocated(files: string[]): number {
  return files.reduce((n, f) => n + statSync(f).blocks * 512, 0);
}

interface Sample {
  wallMs: number;
  cpu: number;
  split: string;
  bytes: number;
  freezeMs: number | null;
  freezeParts?: string;
  detail?: string;
}

/**
 * The freeze window of the last freeze in libvirtd's log since `from` (a byte offset): the freeze command sent
 * until the thaw's answer read, both from libvirtd's own timestamps; and its parts: the guest agent freezing,
 * what ran while it was frozen (backup-begin and the tool's own steps), the guest agent thawing.
 */
function freezeWindow(log: string, from: number): { ms: number; parts: string } | null {
  const lines = readFileSync(log, 'utf8').slice(from).split('\n');
  const time = (line: string) => Date.parse(line.slice(0, 23).replace(' ', 'T') + 'Z');
  let marks: number[] = [];
  let window: { ms: number; parts: string } | null = null;
  for (const line of lines) {
    if (/Send command '\{"execute":"guest-fsfreeze-freeze"/.test(line)) marks = [time(line)];
    else if (/Send command '\{"execute":"guest-fsfreeze-thaw"/.test(line) && marks.length === 2) marks.push(time(line));
    else if (/qemuAgentIOProcessLine.*"return"/.test(line) && (marks.length === 1 || marks.length === 3)) {
      if (marks.push(time(line)) === 4) window = { ms: marks[3] - marks[0], parts: `freeze ${marks[1] - marks[0]} + frozen ${marks[2] - marks[1]} + thaw ${marks[3] - marks[2]}` };
    }
  }
  return window;
}

/**
 * A backup as an operator's script sees it: the request, the job's event stream (SSE) until it ends, then GET of the
 * job until it reads `completed` (its read model may trail its last event). `apiMs`: the request to that answer;
 * `eventMs`: the request to the BackupCompleted event (the hub's clock), what this bench reported before.
 */
async function backupThroughApi(lab: Lab, vmId: string, type: 'full' | 'incremental'): Promise<{ apiMs: number; eventMs: number; job: any; story: Awaited<ReturnType<Lab['story']>>; requestedAt: number }> {
  const correlationId = `bench-peer-${Date.now()}-${Math.random().toString(16).slice(2)}`;
  const requestedAt = Date.now();
  const res = await lab.api('POST', '/api/v1/backups', { vmId, repositoryId: lab.repositoryId, type }, { 'X-Correlation-Id': correlationId });
  if (res.status !== 202) throw new Error(`backup refused: ${res.status} ${JSON.stringify(res.body)}`);
  const jobId = res.body.jobId as string;
  const events = await fetch(`http://127.0.0.1:${lab.apiPort}/api/v1/backups/${jobId}/events`, { headers: { Authorization: `Bearer ${lab.token}` } });
  if (!events.ok || !events.body) throw new Error(`job events: ${events.status}`);
  // the stream ends with the job; its text is not needed
  for await (const chunk of events.body) void chunk;
  let job: any;
  for (;;) {
    job = (await lab.api('GET', `/api/v1/backups/${jobId}`)).body;
    if (job.status === 'completed' || job.status === 'failed') break;
    await sleep(10);
  }
  const apiMs = Date.now() - requestedAt;
  if (job.status !== 'completed') throw new Error(`backup of ${vmId} failed: ${JSON.stringify(job)}`);
  const story = await lab.story(correlationId);
  const completed = Date.parse(story.find((e) => e.type === 'BackupCompleted')?.time ?? '');
  return { apiMs, eventMs: completed - requestedAt, job, story, requestedAt };
}

export async function runPeerBench(): Promise<void> {
  const runs = Number(process.env.SENDENSE_BENCH_RUNS ?? 3);
  const fillMib = Number(process.env.SENDENSE_BENCH_PEER_MIB ?? 1536);
  const waitSeconds = Number(process.env.SENDENSE_BENCH_PEER_WAIT ?? 20);
  const writeMib = Number(process.env.SENDENSE_BENCH_PEER_WRITE_MIB ?? 1);
  const libvirt = await ensureLibvirt();
  if (!libvirt.ok) throw new Error(`libvirt is needed: ${libvirt.reason}`);
  const dir = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? tmpdir(), 'sendense-peer-bench-'));
  chmodSync(dir, 0o755);
  // SENDENSE_BENCH_PROFILE=DIR: hub and agent run with node --cpu-prof into DIR (see the backup bench)
  const lab = new Lab(dir, process.env.SENDENSE_BENCH_PROFILE);
  let guest: GuestDomain | undefined;
  const log = join(dir, 'libvirtd.log');
  const logSettings = await Promise.all([run('virt-admin', [...ADMIN, 'daemon-log-filters']), run('virt-admin', [...ADMIN, 'daemon-log-outputs'])]).then((r) => r.map((x) => x.stdout.replace(/^.*?:\s*/s, '').trim()));
  try {
    out(`load average at start: ${load()}`);
    const version = (await run('virtnbdbackup', ['--version'])).stdout.trim();
    const python = readFileSync((await run('sh', ['-c', 'command -v virtnbdbackup'])).stdout.trim(), 'utf8').split('\n')[0].replace(/^#!\s*/, '').split(' ')[0];
    guest = await startGuest({ name: `sendense-peer-${process.pid}`, dir: join(dir, 'guest'), agent: true, d0Mib: 64, d1Mib: fillMib + 32, fillD1Mib: fillMib, randomFill: true });
    const domain = guest;
    if (writeMib > 0) await startWriter(domain.name, writeMib, fillMib);
    out(
      `one running domain both tools back up in turn (TCG, 1 vCPU, qemu-guest-agent): vda 64 MiB ext4, vdb ${fillMib + 32} MiB with ${fillMib} MiB of random data; ` +
        `the guest writes all the time (its slots and files, 5 small synced writes a second${writeMib > 0 ? `, and ${writeMib} MiB of random data a second across vdb` : ''}); virtnbdbackup ${version}`,
    );
    await run('virt-admin', [...ADMIN, 'daemon-log-filters', '1:qemu.qemu_agent']);
    await run('virt-admin', [...ADMIN, 'daemon-log-outputs', `1:file:${log}`]);
    await lab.start(['--libvirt', 'qemu:///system']);
    const hubPid = lab.hub!.child.pid!;
    const agentPid = lab.agent!.child.pid!;
    const logSize = () => statSync(log, { throwIfNoEntry: false })?.size ?? 0;

    const sendense = async (type: 'full' | 'incremental'): Promise<Sample> => {
      const from = logSize();
      const sample = () => [treeCpu(hubPid), treeCpu(agentPid), cpuSeconds(libvirtdPid()), qemuIoCpu(domain.name), cpuSeconds(hubPid), postgresCpu(hubPid), cpuSeconds(agentPid)];
      const before = sample();
      const { eventMs, apiMs, job, story, requestedAt } = await backupThroughApi(lab, domain.uuid, type);
      const point = (await lab.api('GET', `/api/v1/restore-points/${job.restorePointId}`)).body as { disks: { file: string }[] };
      const files = point.disks.map((d) => join(dir, 'repo', d.file));
      const synced = Date.now();
      await run('sync', files);
      const syncMs = Date.now() - synced;
      const [hub, agent, libvirtd, qemu, hubNode, pg, agentNode] = sample().map((a, i) => a - before[i]);
      const cpu = [hub, agent, libvirtd, qemu];
      return {
        wallMs: apiMs + syncMs,
        cpu: cpu.reduce((a, b) => a + b, 0),
        split: `hub ${hub.toFixed(2)} (node ${hubNode.toFixed(2)}, PostgreSQL ${pg.toFixed(2)}, qemu-nbd and qemu-img ${(hub - hubNode - pg).toFixed(2)}) + agent ${agent.toFixed(2)} (node ${agentNode.toFixed(2)}) + libvirtd ${libvirtd.toFixed(2)} + qemu I/O ${qemu.toFixed(2)}`,
        bytes: allocated(files),
        ...frozen(freezeWindow(log, from)),
        detail: `to BackupCompleted ${eventMs} ms, to the API's completed ${apiMs} ms, fsync of the point's files ${syncMs} ms; timeline (ms since the previous mark): ${phases(story, requestedAt)}`,
      };
    };
    const virtnbdbackup = async (level: 'full' | 'inc', target: string): Promise<Sample> => {
      const from = logSize();
      const existing = new Set(readdirSync(target, { recursive: true }) as string[]);
      const before = [reapedChildren(), cpuSeconds(libvirtdPid()), qemuIoCpu(domain.name)];
      const t = Date.now();
      await run(python, [...VIRTNBDBACKUP, '-d', domain.name, '-l', level, '-o', target], { maxBuffer: 64 * MiB });
      const exited = Date.now();
      const written = (readdirSync(target, { recursive: true }) as string[]).filter((f) => !existing.has(f) && statSync(join(target, f)).isFile()).map((f) => join(target, f));
      await run('sync', written);
      const wallMs = Date.now() - t;
      const after = [reapedChildren(), cpuSeconds(libvirtdPid()), qemuIoCpu(domain.name)];
      const cpu = after.map((a, i) => a - before[i]);
      return {
        wallMs,
        cpu: cpu.reduce((a, b) => a + b, 0),
        split: `virtnbdbackup ${cpu[0].toFixed(2)} + libvirtd ${cpu[1].toFixed(2)} + qemu I/O ${cpu[2].toFixed(2)}`,
        bytes: allocated(written),
        ...frozen(freezeWindow(log, from)),
        detail: `to its exit ${exited - t} ms, fsync of its files ${wallMs - (exited - t)} ms`,
      };
    };

    const results: Record<'ours' | 'peer', Record<'full' | 'incremental', Sample[]>> = { ours: { full: [], incremental: [] }, peer: { full: [], incremental: [] } };
    const show = (who: string, type: string, s: Sample) => out(`    ${who} ${type}: ${s.wallMs} ms, CPU ${s.cpu.toFixed(2)} s (${s.split}), ${(s.bytes / MiB).toFixed(1)} MiB stored, frozen ${s.freezeMs ?? '-'} ms${s.freezeParts ? ` (${s.freezeParts})` : ''}${s.detail ? `\n      ${s.detail}` : ''}`);
    for (let i = 0; i < runs; i++) {
      out(`  round ${i + 1} (load ${load()}):`);
      const target = join(dir, `virtnbdbackup-${i}`);
      mkdirSync(target);
      const order = i % 2 === 0 ? (['ours', 'peer'] as const) : (['peer', 'ours'] as const);
      for (const type of ['full', 'incremental'] as const) {
        if (type === 'incremental') await sleep(waitSeconds * 1000);
        for (const who of order) {
          // no dirty pages in flight from what ran before (the disk's fill, the other tool's output, the guest's
          // writes): the first full after the fill otherwise shared the disk with the kernel writing back 1.5 GiB
          await run('sync', []);
          const s = who === 'ours' ? await sendense(type) : await virtnbdbackup(type === 'full' ? 'full' : 'inc', target);
          results[who][type].push(s);
          show(who === 'ours' ? 'Sendense' : 'virtnbdbackup', type, s);
        }
      }
    }

    const m = (xs: number[]) => median(xs);
    const range = (xs: number[], digits = 1) => `${m(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;
    const row = (label: string, pick: (s: Sample) => number, digits = 1) => {
      const [o, p] = [results.ours, results.peer];
      for (const type of ['full', 'incremental'] as const) {
        const a = o[type].map(pick);
        const b = p[type].map(pick);
        out(`| ${type}, ${label} | ${range(a, digits)} | ${range(b, digits)} | ${(m(a) / m(b)).toFixed(2)} |`);
      }
    };
    const fullGiB = m(results.ours.full.map((s) => s.bytes)) / GiB;
    out(`\nmedians of ${runs} rounds (range); ratio = Sendense / virtnbdbackup (goals: wall <= 0.80, CPU <= 1.00, freeze <= 1.00)`);
    for (const type of ['full', 'incremental'] as const) {
      const ratios = results.ours[type].map((s, i) => (s.wallMs / results.peer[type][i].wallMs).toFixed(2));
      out(`${type}: wall ratio per round ${ratios.join(', ')}`);
    }
    out('| | Sendense | virtnbdbackup | ratio |');
    out('|---|---|---|---|');
    row('wall s', (s) => s.wallMs / 1000, 2);
    row('CPU s', (s) => s.cpu, 2);
    row('MiB stored', (s) => s.bytes / MiB, 0);
    row('freeze ms', (s) => s.freezeMs ?? NaN, 0);
    out(`full, CPU per GiB stored: Sendense ${(m(results.ours.full.map((s) => s.cpu)) / fullGiB).toFixed(2)} s, virtnbdbackup ${(m(results.peer.full.map((s) => s.cpu)) / (m(results.peer.full.map((s) => s.bytes)) / GiB)).toFixed(2)} s`);
    out(`load average at end: ${load()}`);
  } finally {
    await run('virt-admin', [...ADMIN, 'daemon-log-filters', logSettings[0] || '']).catch(() => undefined);
    await run('virt-admin', [...ADMIN, 'daemon-log-outputs', logSettings[1] || '3:file:/var/log/libvirt/libvirtd.log']).catch(() => undefined);
    await lab.close();
    await guest?.destroy();
    rmSync(dir, { recursive: true, force: true });
    await libvirt.stop();
  }
}
