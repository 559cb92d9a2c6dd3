import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureLibvirt, GuestDomain, startGuest } from '../test/fixtures/libvirt/libvirt-guest';
import { cpuSeconds, descendants, Lab, phases, postgresCpu } from './backup.bench';
import { median } from './stats';

/*
 * Sendense against virtnbdbackup (Debian's), on two identical running TCG domains (each tool makes checkpoints,
 * and virtnbdbackup refuses a domain with another tool's): vda 64 MiB ext4, vdb with SENDENSE_BENCH_PEER_MIB of
 * random data (default 1536) above the slots the guest keeps writing. Per round, both tools in turn (the order
 * alternates): a full, then SENDENSE_BENCH_PEER_WAIT seconds of guest writes (default 20), then an incremental.
 * virtnbdbackup's output is fsynced before its time stops, as Sendense's exports flush before a point is recorded.
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

export async function runPeerBench(): Promise<void> {
  const runs = Number(process.env.SENDENSE_BENCH_RUNS ?? 3);
  const fillMib = Number(process.env.SENDENSE_BENCH_PEER_MIB ?? 1536);
  const waitSeconds = Number(process.env.SENDENSE_BENCH_PEER_WAIT ?? 20);
  const libvirt = await ensureLibvirt();
  if (!libvirt.ok) throw new Error(`libvirt is needed: ${libvirt.reason}`);
  const dir = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? tmpdir(), 'sendense-peer-bench-'));
  chmodSync(dir, 0o755);
  const lab = new Lab(dir);
  const guests: GuestDomain[] = [];
  const log = join(dir, 'libvirtd.log');
  const logSettings = await Promise.all([run('virt-admin', [...ADMIN, 'daemon-log-filters']), run('virt-admin', [...ADMIN, 'daemon-log-outputs'])]).then((r) => r.map((x) => x.stdout.replace(/^.*?:\s*/s, '').trim()));
  try {
    out(`load average at start: ${load()}`);
    const version = (await run('virtnbdbackup', ['--version'])).stdout.trim();
    for (const who of ['sendense', 'peer']) {
      guests.push(await startGuest({ name: `sendense-peer-${who}-${process.pid}`, dir: join(dir, who), agent: true, d0Mib: 64, d1Mib: fillMib + 32, fillD1Mib: fillMib, randomFill: true }));
    }
    const [ours, peer] = guests;
    out(`two identical running domains (TCG, 1 vCPU, qemu-guest-agent, writing all the time): vda 64 MiB ext4, vdb ${fillMib + 32} MiB with ${fillMib} MiB of random data; virtnbdbackup ${version}`);
    await run('virt-admin', [...ADMIN, 'daemon-log-filters', '1:qemu.qemu_agent']);
    await run('virt-admin', [...ADMIN, 'daemon-log-outputs', `1:file:${log}`]);
    await lab.start(['--libvirt', 'qemu:///system']);
    const hubPid = lab.hub!.child.pid!;
    const agentPid = lab.agent!.child.pid!;
    const logSize = () => statSync(log, { throwIfNoEntry: false })?.size ?? 0;

    const sendense = async (type: 'full' | 'incremental'): Promise<Sample> => {
      const from = logSize();
      const sample = () => [treeCpu(hubPid), treeCpu(agentPid), cpuSeconds(libvirtdPid()), qemuIoCpu(ours.name), cpuSeconds(hubPid), postgresCpu(hubPid), cpuSeconds(agentPid)];
      const before = sample();
      const { ms, job, story, requestedAt } = await lab.backup(ours.uuid, type);
      const [hub, agent, libvirtd, qemu, hubNode, pg, agentNode] = sample().map((a, i) => a - before[i]);
      const cpu = [hub, agent, libvirtd, qemu];
      const point = (await lab.api('GET', `/api/v1/restore-points/${job.restorePointId}`)).body as { disks: { file: string }[] };
      return {
        wallMs: ms,
        cpu: cpu.reduce((a, b) => a + b, 0),
        split: `hub ${hub.toFixed(2)} (node ${hubNode.toFixed(2)}, PostgreSQL ${pg.toFixed(2)}, qemu-nbd and qemu-img ${(hub - hubNode - pg).toFixed(2)}) + agent ${agent.toFixed(2)} (node ${agentNode.toFixed(2)}) + libvirtd ${libvirtd.toFixed(2)} + qemu I/O ${qemu.toFixed(2)}`,
        bytes: allocated(point.disks.map((d) => join(dir, 'repo', d.file))),
        ...frozen(freezeWindow(log, from)),
        detail: phases(story, requestedAt),
      };
    };
    const virtnbdbackup = async (level: 'full' | 'inc', target: string): Promise<Sample> => {
      const from = logSize();
      const existing = new Set(readdirSync(target, { recursive: true }) as string[]);
      const before = [reapedChildren(), cpuSeconds(libvirtdPid()), qemuIoCpu(peer.name)];
      const t = Date.now();
      await run('virtnbdbackup', ['-d', peer.name, '-l', level, '-o', target], { maxBuffer: 64 * MiB });
      const written = (readdirSync(target, { recursive: true }) as string[]).filter((f) => !existing.has(f) && statSync(join(target, f)).isFile()).map((f) => join(target, f));
      await run('sync', written);
      const wallMs = Date.now() - t;
      const after = [reapedChildren(), cpuSeconds(libvirtdPid()), qemuIoCpu(peer.name)];
      const cpu = after.map((a, i) => a - before[i]);
      return {
        wallMs,
        cpu: cpu.reduce((a, b) => a + b, 0),
        split: `virtnbdbackup ${cpu[0].toFixed(2)} + libvirtd ${cpu[1].toFixed(2)} + qemu I/O ${cpu[2].toFixed(2)}`,
        bytes: allocated(written),
        ...frozen(freezeWindow(log, from)),
      };
    };

    const results: Record<'ours' | 'peer', Record<'full' | 'incremental', Sample[]>> = { ours: { full: [], incremental: [] }, peer: { full: [], incremental: [] } };
    const show = (who: string, type: string, s: Sample) => out(`    ${who} ${type}: ${s.wallMs} ms, CPU ${s.cpu.toFixed(2)} s (${s.split}), ${(s.bytes / MiB).toFixed(1)} MiB stored, frozen ${s.freezeMs ?? '-'} ms${s.freezeParts ? ` (${s.freezeParts})` : ''}${s.detail ? `\n      timeline (ms since the previous mark): ${s.detail}` : ''}`);
    for (let i = 0; i < runs; i++) {
      out(`  round ${i + 1} (load ${load()}):`);
      const target = join(dir, `virtnbdbackup-${i}`);
      mkdirSync(target);
      const order = i % 2 === 0 ? (['ours', 'peer'] as const) : (['peer', 'ours'] as const);
      for (const type of ['full', 'incremental'] as const) {
        if (type === 'incremental') await sleep(waitSeconds * 1000);
        for (const who of order) {
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
    out(`\nmedians of ${runs} rounds (range); ratio = Sendense / virtnbdbackup (goal <= 1.00)`);
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
    for (const g of guests) await g.destroy();
    rmSync(dir, { recursive: true, force: true });
    await libvirt.stop();
  }
}
