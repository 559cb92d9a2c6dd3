import { execFile } from 'node:child_process';
import { createHash, createCipheriv, hash as oneShotHash, randomBytes, randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { promisify } from 'node:util';
import { copyDisk, CopySource } from '../src/data-mover/copy-disk';
import { openNbd } from '../src/nbd-protocol/open-nbd';
import { pskStartTls } from '../src/nbd-protocol/tls-psk';
import { QEMU_NBD_ENV } from '../src/qemu/qemu-nbd-launcher';
import { freePort } from '../test/support/processes';
import { stopPid } from './backup.bench';
import { benchExportArgs } from './datapath.bench';
import { median } from './stats';

/*
 * The agent's sending side of a backup's data path, alone: copyDisk from a source in memory (random bytes,
 * each worker's buffer filled once, so reading costs nothing) into a fresh qcow2 on tmpfs exported by qemu-nbd
 * with the hub's options and environment, as the hub's backup targets are, SENDENSE_BENCH_TLS_MIB (1536) per
 * copy. Lines, interleaved per round (SENDENSE_BENCH_RUNS, 3): plain TCP (the floor), TLS 1.3 PSK as the agent
 * sends, and TLS with node's own handling of multi-buffer writes (what the agent did before: every batch
 * copied into one buffer before encryption), each without and with SHA-256 digests of every 64 KiB block.
 * CPU: the bench's process (process.cpuUsage), its main thread apart (/proc/self/task), and the target's
 * qemu-nbd (/proc/<pid>/stat). Then what one core does in node with the same bytes: AES-128-GCM in 16 KiB
 * calls, SHA-256 per 64 KiB block with createHash and with crypto.hash. SENDENSE_BENCH_DIR: the
 * targets' directory (default /dev/shm, so the disk is not what is measured).
 */

const MiB = 1024 * 1024;
const exec = promisify(execFile);

interface Line {
  label: string;
  tls: boolean;
  /** Node's own writev for TLS: the buffers of a batch copied into one before encryption. */
  nodeBatching?: boolean;
  digests: boolean;
}

interface Measured {
  wallMs: number;
  node: number;
  mainThread: number;
  qemuNbd: number;
}

const LINES: Line[] = [
  { label: 'plain TCP', tls: false, digests: false },
  { label: 'TLS, node batching (before)', tls: true, nodeBatching: true, digests: false },
  { label: 'TLS (now)', tls: true, digests: false },
  { label: 'plain TCP + digests', tls: false, digests: true },
  { label: 'TLS + digests, node batching (before)', tls: true, nodeBatching: true, digests: true },
  { label: 'TLS + digests (now)', tls: true, digests: true },
];

function cpuSeconds(statFile: string): number {
  const fields = readFileSync(statFile, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A source that serves every read from the worker's own buffer, filled with random bytes the first time it is seen. */
function memorySource(size: number): CopySource {
  const filled = new WeakSet<ArrayBufferLike>();
  return {
    size,
    blockSize: { minimum: 1, preferred: 4096, maximum: 32 * MiB, advertised: false },
    maxPayload: 32 * MiB,
    metaContexts: new Map(),
    isOpen: true,
    read: async (_offset: number, length: number, into?: Buffer) => {
      const data = into!.subarray(0, length);
      if (!filled.has(into!.buffer)) {
        filled.add(into!.buffer);
        randomFillSync(into!);
      }
      return data;
    },
    blockStatusAll: () => Promise.reject(new Error('the memory source has no meta contexts')),
  };
}

async function copyOnce(dir: string, pskDir: string, psk: { identity: string; key: string }, line: Line, bytes: number): Promise<Measured> {
  const file = join(dir, 'target.qcow2');
  rmSync(file, { force: true });
  await exec('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(bytes)]);
  const port = await freePort();
  const pidFile = join(dir, `qemu-nbd-${port}.pid`);
  await exec('qemu-nbd', benchExportArgs(port, file, pidFile, { readOnly: false, tls: line.tls ? { pskDir, bind: '127.0.0.1' } : undefined }), {
    env: { ...process.env, ...QEMU_NBD_ENV },
  });
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  try {
    const startTls = async (plain: Duplex) => {
      const socket = await pskStartTls(psk)(plain);
      // pskStartTls sets its own _writev on the socket; without it the prototype's (node's) applies
      if (line.nodeBatching) delete (socket as unknown as { _writev?: unknown })._writev;
      return socket;
    };
    const target = await openNbd({ transport: 'tcp', host: '127.0.0.1', port, exportName: 'disk' }, line.tls ? { startTls } : {});
    const mainStat = `/proc/self/task/${process.pid}/stat`;
    const qemuStat = `/proc/${pid}/stat`;
    const [cpu0, main0, qemu0, t0] = [process.cpuUsage(), cpuSeconds(mainStat), cpuSeconds(qemuStat), Date.now()];
    await copyDisk({ source: memorySource(bytes), target, mode: 'full', digests: line.digests });
    const cpu = process.cpuUsage(cpu0);
    const measured = { wallMs: Date.now() - t0, node: (cpu.user + cpu.system) / 1e6, mainThread: cpuSeconds(mainStat) - main0, qemuNbd: cpuSeconds(qemuStat) - qemu0 };
    await target.close();
    return measured;
  } finally {
    await stopPid(pid);
  }
}

/** CPU seconds one core spends on `bytes` of AES-128-GCM and SHA-256 in node, as TLS and the hasher see them. */
function cryptoFloor(bytes: number): string {
  const data = Buffer.from(new SharedArrayBuffer(64 * MiB));
  randomFillSync(data);
  const time = (work: () => void) => {
    const c0 = process.cpuUsage();
    work();
    const c = process.cpuUsage(c0);
    return ((c.user + c.system) / 1e6).toFixed(2);
  };
  const record = 16 * 1024;
  const block = 64 * 1024;
  const at = (i: number, size: number) => (i * size) % data.length;
  const aes = time(() => {
    const cipher = createCipheriv('aes-128-gcm', randomBytes(16), randomBytes(12));
    for (let i = 0; i < bytes / record; i++) cipher.update(data.subarray(at(i, record), at(i, record) + record));
  });
  const createHashPerBlock = time(() => {
    for (let i = 0; i < bytes / block; i++) createHash('sha256').update(data.subarray(at(i, block), at(i, block) + block)).digest();
  });
  const hashPerBlock = time(() => {
    for (let i = 0; i < bytes / block; i++) oneShotHash('sha256', data.subarray(at(i, block), at(i, block) + block), 'buffer');
  });
  return `AES-128-GCM in 16 KiB calls ${aes} s; SHA-256 per 64 KiB block: createHash ${createHashPerBlock} s, crypto.hash ${hashPerBlock} s`;
}

/** The same from `openssl speed` (1 s each; the system's OpenSSL, node bundles its own of the same 3.0 line): what the cipher and the hash cost without node around them. */
async function opensslFloor(bytes: number): Promise<string> {
  const speed = async (algorithm: string, size: number) => {
    const { stdout } = await exec('openssl', ['speed', '-evp', algorithm, '-bytes', String(size), '-seconds', '1']);
    const kBytesPerSecond = Number(stdout.trim().split('\n').pop()!.trim().split(/\s+/).pop()!.replace(/k$/, ''));
    return `${((kBytesPerSecond * 1000) / 1e9).toFixed(2)} GB/s, ${(bytes / (kBytesPerSecond * 1000)).toFixed(2)} s`;
  };
  return `AES-128-GCM in 16 KiB ${await speed('aes-128-gcm', 16384)}; SHA-256 per 64 KiB ${await speed('sha256', 65536)}`;
}

export async function runTlsSendBench(): Promise<void> {
  const runs = Number(process.env.SENDENSE_BENCH_RUNS ?? 3);
  const bytes = Number(process.env.SENDENSE_BENCH_TLS_MIB ?? 1536) * MiB;
  const dir = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? '/dev/shm', 'sendense-tls-send-'));
  const out = (line: string) => process.stdout.write(`${line}\n`);
  try {
    const pskDir = join(dir, 'psk');
    mkdirSync(pskDir, { mode: 0o700 });
    const psk = { identity: 'sendense', key: randomBytes(32).toString('hex') };
    writeFileSync(join(pskDir, 'keys.psk'), `${psk.identity}:${psk.key}\n`, { mode: 0o600 });
    out(`copyDisk of ${bytes / MiB} MiB from memory into qemu-nbd on ${dir} (hub's options), ${runs} rounds, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    out(`one core, the same ${bytes / MiB} MiB in node: ${cryptoFloor(bytes)}`);
    out(`one core, the same ${bytes / MiB} MiB in OpenSSL itself: ${await opensslFloor(bytes)}`);
    const results = new Map<string, Measured[]>(LINES.map((l) => [l.label, []]));
    for (let round = 0; round < runs; round++) {
      for (const line of LINES) results.get(line.label)!.push(await copyOnce(dir, pskDir, psk, line, bytes));
    }
    out('| line | wall ms | node CPU s | its main thread CPU s | qemu-nbd CPU s | node + qemu-nbd CPU s |');
    out('|---|---|---|---|---|---|');
    const range = (xs: number[], digits: number) => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)})`;
    for (const line of LINES) {
      const m = results.get(line.label)!;
      out(
        `| ${line.label} | ${range(m.map((x) => x.wallMs), 0)} | ${range(m.map((x) => x.node), 2)} | ${range(m.map((x) => x.mainThread), 2)} | ${range(m.map((x) => x.qemuNbd), 2)} | ${range(m.map((x) => x.node + x.qemuNbd), 2)} |`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
