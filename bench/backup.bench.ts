import { ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { copyDisk, DEFAULT_REQUEST_SIZE, DEFAULT_REQUESTS } from '../src/data-mover/copy-disk';
import { benchCopySettings, benchExportArgs, nbdcopyCandidates, settle } from './datapath.bench';
import { BASE_ALLOCATION } from '../src/nbd-protocol/constants';
import { openNbd, OpenNbdOptions } from '../src/nbd-protocol/open-nbd';
import { pskStartTls } from '../src/nbd-protocol/tls-psk';
import { buildSocketExportArgs } from '../src/qemu/qemu-nbd-args';
import { QEMU_NBD_ENV } from '../src/qemu/qemu-nbd-launcher';
import { DIGEST_BLOCK_SIZE } from '../src/wire/block-digests';
import { freePort } from '../test/support/processes';
import { median } from './stats';

/*
 * A backup end to end through the real hub and agent (processes spawned from dist/, the hub on its embedded
 * PostgreSQL; the agent's control traffic through the SSH tunnel, its data straight into the hub's exports
 * over NBD with TLS), next to nbdcopy between the same kinds of exports in the same run.
 * Knobs: SENDENSE_BENCH_RUNS (full backups, default 3), SENDENSE_BENCH_DIR (default the OS temp dir),
 * SENDENSE_BENCH_PROFILE=DIR (hub and agent run with node --cpu-prof into DIR), SENDENSE_BENCH_NODE_ARGS (more
 * node options for hub and agent, e.g. --trace-gc),
 * SENDENSE_BENCH_CONCURRENT=0 skips the 4 concurrent backups, SENDENSE_BENCH_REQUESTS and SENDENSE_BENCH_REQUEST_SIZE
 * set the bench's own copies (the copy alone and the lines that split it; the agent's backups keep copyDisk's
 * defaults), SENDENSE_BENCH_NBDCOPY_OPTIONS="..." replaces the
 * search for nbdcopy's fastest options by the options given.
 */

const exec = promisify(execFile);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const DISK_SIZE = 2 * GiB;
const DATA = 1536 * MiB;
const TOKEN = 'bench-admin-token-0123456789';
/** The CLI as an operator runs it (bin/sendense.js of this checkout). */
export const SENDENSE_BIN = join(__dirname, '..', '..', 'bin', 'sendense.js');
const BIN = SENDENSE_BIN;
const CLK_TCK = 100;

const out = (line: string) => process.stdout.write(`${line}\n`);
const rate = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');


/**
 * CPU seconds (user + system) the process has used so far; with `reaped`, also those of its children it has
 * waited for (the hub's and the agent's qemu-nbd and qemu-img once they exit, nbdcopy for the bench).
 */
export function cpuSeconds(pid: number, reaped = false): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const own = Number(fields[11]) + Number(fields[12]);
  return (reaped ? own + Number(fields[13]) + Number(fields[14]) : own) / CLK_TCK;
}

/** Every live descendant of `pid` (children, their children, ...), from /proc. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  for (let queue = [pid]; queue.length; ) {
    const next = children.get(queue.shift()!) ?? [];
    out.push(...next);
    queue.push(...next);
  }
  return out;
}

/** The live qemu processes (qemu-nbd, qemu-img) under `pid`. */
export function qemuUnder(pid: number): number[] {
  return descendants(pid).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').startsWith('qemu');
    } catch {
      return false;
    }
  });
}

/** Waits until the qemu processes `pid` started since `before` are gone and reaped: their CPU is then in cpuSeconds(pid, true). */
export async function qemuReaped(pid: number, before: readonly number[]): Promise<void> {
  for (let i = 0; i < 200 && qemuUnder(pid).some((p) => !before.includes(p)); i++) await sleep(50);
}

/** SIGTERM, then SIGKILL after 5 s: a process this bench started, gone either way. */
export async function stopPid(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 500; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(10);
  }
  process.kill(pid, 'SIGKILL');
}

/**
 * CPU seconds so far of the hub's embedded PostgreSQL: its live processes, and the backends its postmaster has
 * reaped (the hub does not reap them, so the backup's "with the processes they ran" leaves them out).
 */
export function postgresCpu(hubPid: number): number {
  let seconds = 0;
  for (const pid of postgresPids(hubPid)) {
    try {
      seconds += cpuSeconds(pid, true);
    } catch {
      // gone meanwhile: its postmaster's reaped figure has it
    }
  }
  return seconds;
}

/** The live processes of the hub's embedded PostgreSQL. */
export function postgresPids(hubPid: number): number[] {
  return descendants(hubPid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
    } catch {
      return false;
    }
  });
}

/** CPU of idle processes and of their descendants (the hub's embedded PostgreSQL) over `ms`, in % of one core. */
async function idleCpu(processes: Record<string, number>, ms: number): Promise<string> {
  const sample = (pids: number[]) => {
    const cpu = new Map<number, number>();
    for (const pid of pids) {
      try {
        cpu.set(pid, cpuSeconds(pid));
      } catch {
        // gone meanwhile
      }
    }
    return cpu;
  };
  const families = Object.values(processes).map((pid) => descendants(pid));
  const before = Object.values(processes).map((pid, i) => sample([pid, ...families[i]]));
  await sleep(ms);
  const percent = (seconds: number) => `${((100 * seconds) / (ms / 1000)).toFixed(1)} %`;
  return Object.entries(processes)
    .map(([name, pid], i) => {
      const after = sample([pid, ...families[i]]);
      // only processes alive at both samples count: one that came or went would count its whole life
      const delta = (p: number) => (before[i].has(p) && after.has(p) ? after.get(p)! - before[i].get(p)! : 0);
      const family = families[i].length ? `, its ${families[i].length} descendant processes ${percent(families[i].reduce((a, p) => a + delta(p), 0))}` : '';
      return `${name} ${percent(delta(pid))}${family}`;
    })
    .join('; ');
}

/** The machine's CPU ticks so far, all cores (/proc/stat): user with nice, system with irq and softirq, idle with iowait. */
function machineTicks(): [user: number, system: number, idle: number] {
  const [user, nice, system, idle, iowait, irq, softirq] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return [user + nice, system + irq + softirq, idle + iowait];
}

/** Wall clock of `work`, and how the machine's CPU was spent meanwhile, in % of all cores. */
async function timed(work: () => Promise<unknown>): Promise<Timed> {
  const t0 = machineTicks();
  const began = process.hrtime.bigint();
  await work();
  return { ms: Number(process.hrtime.bigint() - began) / 1e6, ...cpuSince(t0) };
}

/** How the machine's CPU was spent since `t0` (machineTicks), in % of all cores. */
function cpuSince(t0: ReturnType<typeof machineTicks>): { user: number; system: number } {
  const d = machineTicks().map((v, i) => v - t0[i]);
  const total = d[0] + d[1] + d[2] || 1;
  return { user: (100 * d[0]) / total, system: (100 * d[1]) / total };
}

interface Timed {
  ms: number;
  /** % of the machine's CPU (all cores) in user and in system time while it ran. */
  user: number;
  system: number;
}

/** A copy between two exports, with the CPU seconds its three processes spent on it. */
interface Measured extends Timed {
  /** The copier (nbdcopy, or the bench's own process with its hasher thread), the source's qemu-nbd, the target's qemu-nbd. */
  cpu: [copier: number, source: number, target: number];
  /** Our own copies only (nbdcopy's threads are gone when it is reaped): the threads that spent the most, busiest first. */
  threads: { thread: string; seconds: number }[];
}

type Export = Awaited<ReturnType<typeof qemuNbd>>;

/** CPU seconds so far of each live thread of `pid`, named by process and whether it is the process's main thread. */
function threadCpu(pid: number, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(`${name} ${Number(tid) === pid ? 'main thread' : `thread ${tid}`}`, (Number(fields[11]) + Number(fields[12])) / CLK_TCK);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function measured(copierCpu: () => number, source: Export, target: Export, work: () => Promise<unknown>, ownThreads = false): Promise<Measured> {
  const sample = () => [copierCpu(), cpuSeconds(source.pid), cpuSeconds(target.pid)];
  const threads = () => new Map([...(ownThreads ? threadCpu(process.pid, 'copier') : []), ...threadCpu(source.pid, 'source qemu-nbd'), ...threadCpu(target.pid, 'target qemu-nbd')]);
  const before = sample();
  const threadsBefore = threads();
  const t = await timed(work);
  const after = sample();
  const cpu: Measured['cpu'] = [after[0] - before[0], after[1] - before[1], after[2] - before[2]];
  const spent = [...threads()].map(([thread, seconds]) => ({ thread, seconds: seconds - (threadsBefore.get(thread) ?? 0) }));
  // the hasher's thread ends with the copy, before the second sample: what the process spent beyond its live threads
  const ended = cpu[0] - sum(spent.filter((t) => t.thread.startsWith('copier')).map((t) => t.seconds));
  spent.push({ thread: 'copier threads ended with the copy (its hasher)', seconds: ended });
  return { ...t, cpu, threads: ownThreads ? spent.sort((a, b) => b.seconds - a.seconds).slice(0, 4) : [] };
}

const ownCpu = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};
const reapedChildrenCpu = () => cpuSeconds(process.pid, true) - cpuSeconds(process.pid);
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
/** CPU seconds per GiB of data, all three processes. */
const perGiB = (m: Measured) => sum(m.cpu) / (DATA / GiB);
const cpuSplit = (m: Measured) => `${m.cpu.map((c) => (c / (DATA / GiB)).toFixed(2)).join(' + ')} = ${perGiB(m).toFixed(2)}`;

const cpuOf = (runs: Timed[]) => `machine CPU user/system ${runs.map((r) => `${r.user.toFixed(0)}/${r.system.toFixed(0)}`).join(', ')} %`;

export function statusKiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) : 0;
}

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<void>;
}

function spawnSendense(args: string[], env: NodeJS.ProcessEnv, profileDir?: string): Proc {
  const nodeArgs = [...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), ...(process.env.SENDENSE_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (d) => (text = (text + d).slice(-20_000_000)));
  child.stderr!.on('data', (d) => (text = (text + d).slice(-20_000_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, output: () => text, exited };
}

async function stopProc(proc: Proc | undefined): Promise<void> {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), 20_000);
  await proc.exited;
  clearTimeout(timer);
}

/** A raw file of random bytes then converted: the zero tail stays unallocated, as in a real disk image. */
async function randomQcow2(dir: string, file: string, size: number, data: number): Promise<void> {
  const raw = join(dir, 'random.raw');
  await exec('sh', ['-c', `head -c ${data} /dev/urandom > ${raw} && truncate -s ${size} ${raw}`]);
  await exec('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, file]);
  rmSync(raw);
}

/**
 * One qemu-nbd export on TCP loopback with the hub's options, like the hub's targets (writable) or the agent's snapshot (read-only);
 * with `pskDir` (holding keys.psk), TLS is required like on the hub's backup targets.
 */
async function qemuNbd(dir: string, file: string, readOnly: boolean, pskDir?: string, env: Readonly<Record<string, string>> = QEMU_NBD_ENV): Promise<{ uri: string; port: number; pid: number; stop: () => Promise<void> }> {
  const port = await freePort();
  const pidFile = join(dir, `qemu-nbd-${port}.pid`);
  await exec('qemu-nbd', benchExportArgs(port, file, pidFile, { readOnly, tls: pskDir ? { pskDir, bind: '127.0.0.1' } : undefined }), { env: { ...process.env, ...env } });
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return {
    uri: pskDir ? `nbds://sendense@127.0.0.1:${port}/disk?tls-psk-file=${pskDir}/keys.psk` : `nbd://127.0.0.1:${port}/disk`,
    port,
    pid,
    stop: () => stopPid(pid),
  };
}

/** nbdcopy from the source export into a fresh qcow2 target export; ms of the copy alone. */
async function nbdcopyOnce(dir: string, source: Export, options: string[], pskDir?: string, env?: Readonly<Record<string, string>>): Promise<Measured> {
  const file = join(dir, 'nbdcopy-target.qcow2');
  await exec('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(DISK_SIZE)]);
  const target = await qemuNbd(dir, file, false, pskDir, env);
  try {
    await settle();
    return await measured(reapedChildrenCpu, source, target, () => exec('nbdcopy', ['--target-is-zero', ...options, source.uri, target.uri]));
  } finally {
    await target.stop();
    rmSync(file, { force: true });
  }
}

/**
 * copyDisk into a fresh target export; ms of the copy alone. As the agent runs it: with digests, and TLS with
 * the target's key (`pskDir`); without either, the lines that show what each costs.
 */
async function copyDiskOnce(dir: string, source: Export, pskDir: string | undefined, digests: boolean, env?: Readonly<Record<string, string>>): Promise<Measured> {
  const file = join(dir, 'copydisk-target.qcow2');
  await exec('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(DISK_SIZE)]);
  const target = await qemuNbd(dir, file, false, pskDir, env);
  const src = await openNbd(source.uri, { metaContexts: [BASE_ALLOCATION] });
  const address = { transport: 'tcp' as const, host: '127.0.0.1', port: target.port, exportName: 'disk' };
  let tls: OpenNbdOptions = {};
  if (pskDir) {
    const [identity, key] = readFileSync(join(pskDir, 'keys.psk'), 'utf8').trim().split(':');
    tls = { startTls: pskStartTls({ identity, key }) };
  }
  const dst = await openNbd(address, tls);
  try {
    await settle();
    return await measured(ownCpu, source, target, () => copyDisk({ source: src, target: dst, mode: 'full', digests, ...benchCopySettings() }), true);
  } finally {
    await dst.close();
    await src.close();
    await target.stop();
    rmSync(file, { force: true });
  }
}

/** nbdcopy's options tried once each: the fastest is the reference's configuration. */
async function bestNbdcopyOptions(dir: string, source: Export): Promise<string[]> {
  const candidates = nbdcopyCandidates();
  let best: { options: string[]; ms: number } | undefined;
  for (const options of candidates) {
    const { ms } = await nbdcopyOnce(dir, source, options);
    out(`  nbdcopy ${options.join(' ') || '(defaults)'}: ${rate(DATA, ms).toFixed(0)} MiB/s`);
    if (!best || ms < best.ms) best = { options, ms };
  }
  return best!.options;
}

/** qemu-nbd's environment without QEMU_NBD_ENV's malloc tuning: glibc's defaults, for the lines that show what the tuning buys. */
const GLIBC_DEFAULTS: Readonly<Record<string, string>> = { LC_ALL: 'C', GLIBC_TUNABLES: '' };

/** MiB/s of one core for the work the backup adds to a plain copy: AEAD over TLS-record-sized chunks, SHA-256 over digest blocks. */
function cryptoRates(): string {
  const data = randomBytes(64 * MiB);
  const time = (work: () => void) => {
    work(); // warm-up
    const t = performance.now();
    work();
    return rate(data.length, performance.now() - t).toFixed(0);
  };
  // one context fed record-sized chunks, as a TLS connection's is: a context per record would measure its setup instead
  const aead = (cipher: 'aes-128-gcm' | 'chacha20-poly1305') => () => {
    const key = randomBytes(cipher === 'aes-128-gcm' ? 16 : 32);
    const c = cipher === 'aes-128-gcm' ? createCipheriv(cipher, key, randomBytes(12)) : createCipheriv(cipher, key, randomBytes(12), { authTagLength: 16 });
    const out = Buffer.allocUnsafe(16 * 1024);
    for (let pos = 0; pos < data.length; pos += out.length) c.update(data.subarray(pos, pos + out.length)).copy(out);
    c.final();
  };
  const sha256 = () => {
    for (let pos = 0; pos < data.length; pos += DIGEST_BLOCK_SIZE) createHash('sha256').update(data.subarray(pos, pos + DIGEST_BLOCK_SIZE)).digest();
  };
  return `AES-128-GCM ${time(aead('aes-128-gcm'))} MiB/s, ChaCha20-Poly1305 ${time(aead('chacha20-poly1305'))} MiB/s (16 KiB records), SHA-256 ${time(sha256)} MiB/s (64 KiB blocks)`;
}

/** Milliseconds to open NBD connections (connect and negotiate), median of 5 each. */
async function connectLatency(dir: string, file: string, pskDir: string): Promise<string> {
  const tcp = await qemuNbd(dir, file, true);
  const tls = await qemuNbd(dir, file, true, pskDir);
  const socket = join(dir, 'latency.sock');
  const pidFile = join(dir, 'latency.pid');
  await exec('qemu-nbd', ['--fork', ...buildSocketExportArgs({ file, format: 'qcow2', exportName: 'disk', shared: 8, socket }, pidFile)], { env: { ...process.env, ...QEMU_NBD_ENV } });
  const [identity, key] = readFileSync(join(pskDir, 'keys.psk'), 'utf8').trim().split(':');
  const timeOpen = async (open: () => Promise<{ close: () => Promise<void> }>) => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const client = await open();
      times.push(performance.now() - t);
      await client.close();
    }
    return median(times).toFixed(1);
  };
  try {
    const overTcp = await timeOpen(() => openNbd(tcp.uri));
    const overTls = await timeOpen(() => openNbd({ transport: 'tcp', host: '127.0.0.1', port: tls.port, exportName: 'disk' }, { startTls: pskStartTls({ identity, key }) }));
    const overUnix = await timeOpen(() => openNbd(`nbd+unix:///disk?socket=${socket}`));
    return `TCP ${overTcp} ms, TCP with TLS ${overTls} ms, Unix socket ${overUnix} ms`;
  } finally {
    await tcp.stop();
    await tls.stop();
    process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGTERM');
  }
}

/** A key file as the hub writes one, for the TLS targets of the lines that split the gap. */
function pskDirIn(dir: string): string {
  const pskDir = join(dir, 'psk');
  mkdirSync(pskDir, { mode: 0o700 });
  writeFileSync(join(pskDir, 'keys.psk'), `sendense:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  return pskDir;
}

interface Story {
  type: string;
  streamId: string;
  time: string;
  data: Record<string, unknown>;
}

/** Hub (embedded PostgreSQL) and agent processes from dist/; the live bench runs its agent on libvirt. */
export class Lab {
  readonly token = TOKEN;
  hub?: Proc;
  agent?: Proc;
  apiPort = 0;
  repositoryId = '';

  constructor(
    private readonly dir: string,
    private readonly profileDir?: string,
    /** Two labs on one database (the fleet bench): the second hub's settings, and the repository the first created. */
    private readonly options: { hubEnv?: Record<string, string>; agentName?: string; repositoryId?: string; repositorySettings?: Record<string, unknown> } = {},
  ) {}

  agentEnv(): NodeJS.ProcessEnv {
    return { SENDENSE_TOKEN: TOKEN, SENDENSE_AGENT_DIR: join(this.dir, 'agent'), SENDENSE_LOG_LEVEL: 'warn' };
  }

  /** `source`: the agent's source arguments, `--inventory FILE` or `--libvirt URI`; none starts the hub alone. */
  async start(source: string[]): Promise<void> {
    this.apiPort = await freePort();
    this.hub = spawnSendense(
      ['hub'],
      {
        SENDENSE_DATA_DIR: join(this.dir, 'hub'),
        SENDENSE_API_PORT: String(this.apiPort),
        SENDENSE_SSH_PORT: String(await freePort()),
        SENDENSE_SSH_BIND: '127.0.0.1',
        SENDENSE_ADMIN_TOKEN: TOKEN,
        SENDENSE_NBD_PORTS: '14100-14163',
        SENDENSE_LOG_LEVEL: 'warn',
        // what the benches weigh after retention is the chain as it ends up, not its points waiting in the recycle bin
        SENDENSE_DELETE_GRACE_DAYS: '0',
        ...this.options.hubEnv,
      },
      this.profileDir,
    );
    await this.until(async () => (await fetch(`http://127.0.0.1:${this.apiPort}/api/v1/health`)).ok, 120_000, 'the hub to answer');
    if (this.options.repositoryId) this.repositoryId = this.options.repositoryId;
    else {
      mkdirSync(join(this.dir, 'repo'));
      this.repositoryId = (await this.api('POST', '/api/v1/repositories', { name: 'bench', kind: 'local', path: join(this.dir, 'repo'), ...this.options.repositorySettings })).body.repositoryId;
    }
    // no source: a hub alone (the second hub of the sync bench)
    if (!source.length) return;
    const register = spawnSendense(['agent', 'register', '--hub', `http://127.0.0.1:${this.apiPort}`, '--name', this.options.agentName ?? 'bench-agent'], this.agentEnv());
    await register.exited;
    if (register.child.exitCode !== 0) throw new Error(`agent register failed: ${register.output()}`);
    this.agent = spawnSendense(['agent', 'run', ...source], this.agentEnv(), this.profileDir);
    await this.until(async () => {
      const vms = (await this.api('GET', '/api/v1/vms')).body as { agentConnected: boolean }[];
      return Array.isArray(vms) && vms.length > 0 && vms.every((v) => v.agentConnected);
    }, 60_000, 'the agent to connect');
  }

  async api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    const res = await fetch(`http://127.0.0.1:${this.apiPort}${path}`, {
      method,
      headers: { ...headers, Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /**
   * Requests a backup and waits for its end. End to end is from the request to the job's BackupCompleted event
   * (the hub's clock, the same machine's): polling for the end every 250 ms costs the hub little CPU, and its
   * granularity does not enter the figure (polling every 20 ms had the hub spend ~0.3 s of CPU per GiB answering).
   */
  async backup(vmId: string, type: 'full' | 'incremental' | 'auto', onPoll?: () => void): Promise<{ ms: number; correlationId: string; job: any; story: Story[]; requestedAt: number }> {
    const correlationId = `bench-${vmId}-${Date.now()}-${Math.random().toString(16).slice(2)}`;
    const requestedAt = Date.now();
    const res = await this.api('POST', '/api/v1/backups', { vmId, repositoryId: this.repositoryId, type }, { 'X-Correlation-Id': correlationId });
    if (res.status !== 202) throw new Error(`backup refused: ${res.status} ${JSON.stringify(res.body)}`);
    let job: any;
    await this.until(async () => {
      onPoll?.();
      job = (await this.api('GET', `/api/v1/backups/${res.body.jobId}`)).body;
      return job.status === 'completed' || job.status === 'failed';
    }, 600_000, `backup of ${vmId}`, 250);
    if (job.status !== 'completed') throw new Error(`backup of ${vmId} failed: ${JSON.stringify(job)}\n${this.agent?.output()}`);
    const story = await this.story(correlationId);
    const completed = Date.parse(story.find((e) => e.type === 'BackupCompleted')?.time ?? '');
    if (Number.isNaN(completed)) throw new Error(`backup of ${vmId}: no BackupCompleted in its story`);
    return { ms: completed - requestedAt, correlationId, job, story, requestedAt };
  }

  async story(correlationId: string): Promise<Story[]> {
    return (await this.api('GET', `/api/v1/audit/correlations/${correlationId}?limit=1000`)).body.events;
  }

  async until(check: () => Promise<boolean>, timeoutMs: number, what: string, everyMs = 100): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nhub:\n${this.hub?.output().slice(-3000)}\nagent:\n${this.agent?.output().slice(-3000)}`);
      await sleep(everyMs);
    }
  }

  async close(): Promise<void> {
    if (process.env.SENDENSE_BENCH_NODE_ARGS) {
      writeFileSync(join(tmpdir(), 'sendense-bench-hub.log'), this.hub?.output() ?? '');
      writeFileSync(join(tmpdir(), 'sendense-bench-agent.log'), this.agent?.output() ?? '');
      out(`hub and agent output (with their node options' traces): ${join(tmpdir(), 'sendense-bench-hub.log')}, ${join(tmpdir(), 'sendense-bench-agent.log')}`);
    }
    await stopProc(this.agent);
    await stopProc(this.hub);
  }
}

/**
 * The one VM the sync and encryption benches back up: a qcow2 disk of `fullMib` MiB of random data (nothing in it
 * compresses or repeats) with 512 MiB of room beyond it, under `dir/vm/` with an inventory naming it vm1, and
 * `change`, the incremental's writes: random 4 MiB chunks every 8 MiB across the data, `incMib` MiB in all.
 */
/**
 * `change` writes the same 4 MiB of random data at every 8 MiB of the first `incMib` * 2, each time; `freshChange`
 * new random data at the same places (for a store that keeps a repeated piece once).
 */
export async function randomDataVm(dir: string, fullMib: number, incMib: number): Promise<{ disk: string; inventory: string; size: number; change: () => Promise<unknown>; freshChange: () => Promise<unknown> }> {
  const size = (fullMib + 512) * MiB;
  const disk = join(dir, 'vm', 'disk0.qcow2');
  mkdirSync(join(dir, 'vm'));
  const random = join(dir, 'vm', 'random.raw');
  await exec('sh', ['-c', `head -c ${fullMib * MiB} /dev/urandom > ${random} && truncate -s ${size} ${random}`]);
  await exec('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', random, disk]);
  rmSync(random);
  const inventory = join(dir, 'vm', 'inventory.json');
  writeFileSync(inventory, JSON.stringify({ vms: [{ id: 'vm1', name: 'vm1', disks: [{ id: 'disk0', path: disk }] }] }));
  const chunk = join(dir, 'vm', 'chunk.raw');
  await exec('sh', ['-c', `head -c ${4 * MiB} /dev/urandom > ${chunk}`]);
  const writes = (pieces: (i: number) => string) => Array.from({ length: incMib / 4 }, (_, i) => ['-c', `write -s ${pieces(i)} ${i * 8 * MiB} ${4 * MiB}`]).flat();
  const freshChange = async () => {
    const pieces = Array.from({ length: incMib / 4 }, (_, i) => join(dir, 'vm', `piece-${i}.raw`));
    for (const piece of pieces) writeFileSync(piece, randomBytes(4 * MiB));
    await exec('qemu-io', ['-f', 'qcow2', ...writes((i) => pieces[i]), disk]);
    for (const piece of pieces) rmSync(piece);
  };
  return { disk, inventory, size, change: () => exec('qemu-io', ['-f', 'qcow2', ...writes(() => chunk), disk]), freshChange };
}

/**
 * Where a job's time went, from its events: each phase ends at the first event of the type named.
 * setup = request to transfer start (targets, leases, exports, snapshot), transfer, finish = last
 * disk's transfer to the restore point recorded and the job completed (exports stopped, leases released).
 */
export function phases(story: Story[], requestedAt: number): string {
  const t = (type: string, last = false) => {
    const hits = story.filter((e) => e.type === type);
    const hit = last ? hits[hits.length - 1] : hits[0];
    return hit ? Date.parse(hit.time) : NaN;
  };
  const marks: [string, number][] = [
    ['request accepted', t('BackupRequested')],
    ['targets created', t('BackupTargetsPrepared')],
    ['NBD ports leased', t('NbdPortAllocated', true)],
    ['exports started', t('QemuNbdStarted', true)],
    ['snapshot taken', t('SnapshotCreated')],
    ['transfer started', t('DiskTransferStarted')],
    ['transfer done', t('DiskTransferCompleted', true)],
    ['snapshot removed', t('SnapshotRemoved')],
    ['exports stopped', t('QemuNbdStopped', true)],
    ['restore point added', t('RestorePointAdded')],
    ['job completed', t('BackupCompleted')],
  ];
  let previous = requestedAt;
  const parts: string[] = [];
  for (const [name, at] of marks.filter(([, at]) => !Number.isNaN(at)).sort((a, b) => a[1] - b[1])) {
    parts.push(`${name} +${at - previous}`);
    previous = at;
  }
  return parts.join(', ');
}

export function summarizePhases(story: Story[], requestedAt: number): { setup: number; transfer: number; finish: number } {
  const first = (type: string) => Date.parse(story.find((e) => e.type === type)?.time ?? '');
  const last = (type: string) => Date.parse([...story].reverse().find((e) => e.type === type)?.time ?? '');
  const transferStart = first('DiskTransferStarted');
  const transferEnd = last('DiskTransferCompleted');
  return { setup: transferStart - requestedAt, transfer: transferEnd - transferStart, finish: first('BackupCompleted') - transferEnd };
}

/** 64 MiB changed: 512 runs of 128 KiB spread over the 2 GiB disk, through qemu-io like a running VM's writes. */
async function change64MiB(file: string): Promise<number> {
  const commands: string[] = [];
  const runs = 512;
  const stride = DISK_SIZE / runs;
  for (let i = 0; i < runs; i++) commands.push('-c', `write -q -P ${(i % 250) + 1} ${i * stride + ((i * 7919) % 64) * 64 * 1024} ${128 * 1024}`);
  await exec('qemu-io', ['-f', 'qcow2', ...commands, file], { maxBuffer: 16 * MiB });
  return runs * 128 * 1024;
}

export async function runBackupBench(): Promise<void> {
  const runs = Number(process.env.SENDENSE_BENCH_RUNS ?? 3);
  const profileDir = process.env.SENDENSE_BENCH_PROFILE;
  const dir = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? tmpdir(), 'sendense-backup-bench-'));
  chmodSync(dir, 0o755);
  const lab = new Lab(dir, profileDir);
  let source: Awaited<ReturnType<typeof qemuNbd>> | undefined;
  try {
    out(`load average at start: ${load()} (${(await exec('nproc')).stdout.trim()} cores)`);
    const vmDir = join(dir, 'vm');
    mkdirSync(vmDir);
    const disk = join(vmDir, 'big-disk0.qcow2');
    let t = Date.now();
    await randomQcow2(vmDir, disk, DISK_SIZE, DATA);
    out(`source: 2 GiB qcow2 holding 1.5 GiB of random data, built in ${Date.now() - t} ms`);

    out('nbdcopy reference (qemu-nbd -r source -> qemu-nbd qcow2 target with the hub\'s options, TCP loopback, --target-is-zero), options tried once each:');
    source = await qemuNbd(dir, disk, true);
    const options = await bestNbdcopyOptions(dir, source);
    await source.stop();
    const pskDir = pskDirIn(dir);
    out(`one core of this machine, in node (OpenSSL): ${cryptoRates()}`);
    out(`opening an NBD connection to qemu-nbd (connect and negotiate, our client, median of 5): ${await connectLatency(dir, disk, pskDir)}`);

    const concurrent = process.env.SENDENSE_BENCH_CONCURRENT !== '0';
    const small: string[] = [];
    const vms = [{ id: 'big', name: 'big', disks: [{ id: 'disk0', path: disk }] }];
    if (concurrent) {
      const base = join(vmDir, 'small.qcow2');
      await randomQcow2(vmDir, base, 512 * MiB, 256 * MiB);
      for (let v = 0; v < 4; v++) {
        const disks = [0, 1].map((d) => ({ id: `disk${d}`, path: join(vmDir, `small${v}-disk${d}.qcow2`) }));
        for (const d of disks) await exec('cp', [base, d.path]);
        vms.push({ id: `small${v}`, name: `small${v}`, disks });
        small.push(`small${v}`);
      }
      rmSync(base);
    }
    const inventory = join(vmDir, 'inventory.json');
    writeFileSync(inventory, JSON.stringify({ vms }));

    t = Date.now();
    await lab.start(['--inventory', inventory]);
    out(`hub and agent started and connected in ${Date.now() - t} ms`);
    const hubPid = lab.hub!.child.pid!;
    const agentPid = lab.agent!.child.pid!;
    out(`idle, over 10 s (% of one core): ${await idleCpu({ hub: hubPid, agent: agentPid }, 10_000)}`);

    // The machine's speed drifts by a factor of two within minutes here (other guests on the host): each round
    // measures the reference and the backup back to back, and the ratio is taken per round.
    const { requests = DEFAULT_REQUESTS, requestSize = DEFAULT_REQUEST_SIZE } = benchCopySettings();
    const copySettings = `${requests} x ${requestSize / 1024} KiB in flight`;
    out(`${runs} rounds, each: nbdcopy ${options.join(' ') || '(defaults)'} (the reference); the same into a target requiring TLS with a pre-shared key as the hub's (not the reference); the agent's copy alone (copyDisk, ${copySettings}, SHA-256 digests, TLS) into such a target, in the bench's process (not the reference); nbdcopy and the copy alone again between exports whose qemu-nbd runs with glibc's malloc defaults instead of QEMU_NBD_ENV (not the reference); a full backup of the 2 GiB disk (1.5 GiB of data) through hub + agent (control through the SSH tunnel, data NBD over TLS-PSK)`);
    const refs: Measured[] = [];
    const tls: Timed[] = [];
    const alone: Measured[] = [];
    const costs: { plain: Measured; digests: Measured; tls: Measured }[] = [];
    const defaults: { ref: Timed; alone: Timed }[] = [];
    const fulls: number[] = [];
    const ratios: number[] = [];
    const backupCpu: number[] = [];
    const cores = Number((await exec('nproc')).stdout.trim());
    let hubCpu = 0;
    let agentCpu = 0;
    let hubPostgresCpu = 0;
    for (let i = 0; i < runs; i++) {
      // the source's export is up for the copies only: the agent's snapshot takes the image's write lock
      source = await qemuNbd(dir, disk, true);
      const ref = await nbdcopyOnce(dir, source, options);
      const viaTls = await nbdcopyOnce(dir, source, options, pskDir);
      const ours = await copyDiskOnce(dir, source, pskDir, true);
      const cost = {
        plain: await copyDiskOnce(dir, source, undefined, false),
        digests: await copyDiskOnce(dir, source, undefined, true),
        tls: await copyDiskOnce(dir, source, pskDir, false),
      };
      await source.stop();
      source = await qemuNbd(dir, disk, true, undefined, GLIBC_DEFAULTS);
      const refDefaults = await nbdcopyOnce(dir, source, options, undefined, GLIBC_DEFAULTS);
      const oursDefaults = await copyDiskOnce(dir, source, pskDir, true, GLIBC_DEFAULTS);
      await source.stop();
      defaults.push({ ref: refDefaults, alone: oursDefaults });
      refs.push(ref);
      tls.push(viaTls);
      alone.push(ours);
      costs.push(cost);
      const cpu0 = [cpuSeconds(hubPid), cpuSeconds(agentPid)];
      const all0 = cpuSeconds(hubPid, true) + cpuSeconds(agentPid, true);
      const pg0 = postgresCpu(hubPid);
      await settle();
      const t0 = machineTicks();
      const { ms, story, requestedAt } = await lab.backup('big', 'full');
      const machine = { ms, ...cpuSince(t0) };
      const cpu = [cpuSeconds(hubPid) - cpu0[0], cpuSeconds(agentPid) - cpu0[1]];
      const pg = postgresCpu(hubPid) - pg0;
      hubPostgresCpu += pg;
      backupCpu.push((cpuSeconds(hubPid, true) + cpuSeconds(agentPid, true) - all0) / (DATA / GiB));
      hubCpu += cpu[0];
      agentCpu += cpu[1];
      fulls.push(ms);
      ratios.push(ref.ms / ms);
      const p = summarizePhases(story, requestedAt);
      out(`  round ${i + 1}: nbdcopy ${rate(DATA, ref.ms).toFixed(0)} MiB/s (${cpuOf([ref])}); into TLS ${rate(DATA, viaTls.ms).toFixed(0)} MiB/s (${cpuOf([viaTls])}); copy alone ${rate(DATA, ours.ms).toFixed(0)} MiB/s (${cpuOf([ours])}); with glibc's malloc defaults: nbdcopy ${rate(DATA, refDefaults.ms).toFixed(0)} MiB/s, copy alone ${rate(DATA, oursDefaults.ms).toFixed(0)} MiB/s`);
      out(`    our copy without TLS or digests ${rate(DATA, cost.plain.ms).toFixed(0)} MiB/s, with digests only ${rate(DATA, cost.digests.ms).toFixed(0)} MiB/s, with TLS only ${rate(DATA, cost.tls.ms).toFixed(0)} MiB/s`);
      out(`    CPU seconds per GiB (copier + source qemu-nbd + target qemu-nbd = all): nbdcopy ${cpuSplit(ref)}; our copy without TLS or digests ${cpuSplit(cost.plain)}, digests only ${cpuSplit(cost.digests)}, TLS only ${cpuSplit(cost.tls)}, both (the copy alone) ${cpuSplit(ours)}`);
      out(`    busiest threads of the copy alone, CPU seconds per GiB: ${ours.threads.map((t) => `${t.thread} ${(t.seconds / (DATA / GiB)).toFixed(2)}`).join(', ')}`);
      out(`    backup ${rate(DATA, ms).toFixed(0)} MiB/s = ${(ref.ms / ms).toFixed(2)} of this round's nbdcopy (${ms.toFixed(0)} ms end to end; setup ${p.setup} ms, transfer ${p.transfer} ms = ${rate(DATA, p.transfer).toFixed(0)} MiB/s, finish ${p.finish} ms); CPU hub ${cpu[0].toFixed(2)} s (its PostgreSQL ${pg.toFixed(2)} s), agent ${cpu[1].toFixed(2)} s, with the qemu-nbd and qemu-img they ran ${backupCpu[i].toFixed(2)} s per GiB; ${cpuOf([machine])}`);
      out(`    timeline (ms since the previous mark): ${phases(story, requestedAt)}`);
    }
    const ms = (runs: Timed[]) => runs.map((r) => r.ms);
    const refRate = rate(DATA, median(ms(refs)));
    out(`medians: nbdcopy ${refRate.toFixed(0)} MiB/s; into TLS ${rate(DATA, median(ms(tls))).toFixed(0)} MiB/s; copy alone ${rate(DATA, median(ms(alone))).toFixed(0)} MiB/s (${median(ms(alone).map((m, i) => refs[i].ms / m)).toFixed(2)} of its round's nbdcopy); full backup ${rate(DATA, median(fulls)).toFixed(0)} MiB/s end to end`);
    out(`with glibc's malloc defaults in qemu-nbd, medians: nbdcopy ${rate(DATA, median(defaults.map((d) => d.ref.ms))).toFixed(0)} MiB/s, copy alone ${rate(DATA, median(defaults.map((d) => d.alone.ms))).toFixed(0)} MiB/s`);
    out(`ratio backup / nbdcopy per round ${ratios.map((r) => r.toFixed(2)).join(', ')}; median ${median(ratios).toFixed(2)}`);
    const dataGiB = (DATA / GiB) * runs;
    out(`CPU per GiB of data: hub ${(hubCpu / dataGiB).toFixed(2)} s (its PostgreSQL ${(hubPostgresCpu / dataGiB).toFixed(2)} s), agent ${(agentCpu / dataGiB).toFixed(2)} s (node processes only); the backup with every process it ran (hub, agent, their qemu-nbd and qemu-img) ${median(backupCpu).toFixed(2)} s (median)`);
    // What the tunnel's encryption and issue 10's digests cost, measured against our own copy without them, and
    // the fastest a copy could go if it had every core to itself: cores / (CPU seconds per GiB) GiB/s.
    const plainCpu = median(costs.map((c) => perGiB(c.plain)));
    const extra = (pick: (c: (typeof costs)[number], i: number) => Measured) => `+${(median(costs.map((c, i) => perGiB(pick(c, i)))) - plainCpu).toFixed(2)}`;
    out(`what each guarantee costs, CPU seconds per GiB over our copy without them (${plainCpu.toFixed(2)}, nbdcopy ${median(refs.map(perGiB)).toFixed(2)}), medians: SHA-256 digests ${extra((c) => c.digests)}, TLS ${extra((c) => c.tls)}, both ${extra((_, i) => alone[i])}`);
    const ceiling = (cpuPerGiB: number, i: number) => (cores / cpuPerGiB) * 1024 / rate(DATA, refs[i].ms);
    out(`ceiling on this machine's ${cores} cores (all of them busy with nothing else; per round, against that round's nbdcopy): our copy with digests and TLS ${median(alone.map((a, i) => ceiling(perGiB(a), i))).toFixed(2)}, the backup with its processes ${median(backupCpu.map((c, i) => ceiling(c, i))).toFixed(2)}, nbdcopy itself ${median(refs.map((r, i) => ceiling(perGiB(r), i))).toFixed(2)} (medians)`);
    // One thread cannot use more than one core: however many cores there are, the copy moves at most 1 / (its busiest
    // thread's CPU seconds per GiB) GiB/s.
    const threadBound = (a: Measured, i: number) => (1 / (a.threads[0].seconds / (DATA / GiB))) * 1024 / rate(DATA, refs[i].ms);
    out(`bound of the copy alone's busiest thread (one core at most, however many the machine has; per round, against that round's nbdcopy): ${median(alone.map(threadBound)).toFixed(2)} (median; rounds ${alone.map((a, i) => threadBound(a, i).toFixed(2)).join(', ')})`);
    out(`peak RSS (VmHWM) after the full backups: hub ${(statusKiB(hubPid, 'VmHWM') / 1024).toFixed(0)} MiB, agent ${(statusKiB(agentPid, 'VmHWM') / 1024).toFixed(0)} MiB`);

    // incremental: the chain's last point is a full of this disk; 64 MiB changed since
    t = Date.now();
    const changed = await change64MiB(disk);
    out(`incremental: ${(changed / MiB).toFixed(0)} MiB changed on the 2 GiB disk (qemu-io, ${Date.now() - t} ms)`);
    const incr = await lab.backup('big', 'incremental');
    const written = incr.job.disks?.[0];
    out(`incremental backup end to end: ${incr.ms.toFixed(0)} ms (disk record ${JSON.stringify(written ?? null)})`);
    out(`    timeline (ms since the previous mark): ${phases(incr.story, incr.requestedAt)}`);

    if (concurrent) {
      let peak = 0;
      const sample = () => (peak = Math.max(peak, statusKiB(hubPid, 'VmRSS')));
      const before = statusKiB(hubPid, 'VmRSS');
      const sampler = setInterval(sample, 50);
      t = Date.now();
      try {
        await Promise.all(small.map((vm) => lab.backup(vm, 'full', sample)));
      } finally {
        clearInterval(sampler);
      }
      out(`4 concurrent full backups of 2-disk VMs (2 x 512 MiB disks, 256 MiB of random data each): ${Date.now() - t} ms; hub RSS ${(before / 1024).toFixed(0)} MiB before, peak ${(peak / 1024).toFixed(0)} MiB during`);
    }
    out(`load average at end: ${load()}`);
  } finally {
    await source?.stop();
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
