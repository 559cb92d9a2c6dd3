import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkStore } from '../src/repositories/chunks/chunk-store';
import { ChunkWorkers } from '../src/repositories/chunks/chunk-workers';
import { NbdServer } from '../src/nbd-protocol/nbd-server';
import { RunDirFiles } from '../src/nbd/qemu-nbd/run-dir-files';
import { imageArgs, imageKeys, readKeyFile } from '../src/qemu/image-keys';
import { createEncryptedQcow2 } from '../src/qemu/luks-qcow2';
import { QEMU_NBD_ENV } from '../src/qemu/qemu-nbd-launcher';
import { freePort } from '../test/support/processes';
import { benchExportArgs, settle } from './datapath.bench';
import { cpuSeconds, stopPid } from './backup.bench';
import { median } from './stats';
import { allocatedBytes, shell } from './store/measure';
import { readBack } from './store/read-back';

/*
 * A backup's write path on its own: the same disk (SENDENSE_BENCH_CT_MIB MiB, default 1024: half random, half
 * generated text) written by libnbd's nbdcopy over TCP with TLS-PSK, one connection as an agent uses per disk, into
 * each kind of target the hub can put behind an export: today's qemu-nbd on a plain qcow2 and on a LUKS qcow2 (the
 * hub's own options and header), and the hub's own NBD server on a chunk store (src/repositories/chunks) plain and
 * encrypted. Time runs from the copy's start until the target is durable (qemu-nbd has flushed and exited; the chunk
 * point is committed). CPU: the target (qemu-nbd, or this process, which runs nothing else meanwhile) and nbdcopy.
 * Then the point is read back whole into a raw file and fsynced: `qemu-img convert` of the qcow2 (what today's disk
 * image download runs), the chunk store's view in 2 MiB reads (what the hub's NBD server serves).
 * The chunk store seals and opens chunks on worker threads as chunk-nbd does (SENDENSE_BENCH_CT_THREADS of them,
 * default one per core). Rounds: SENDENSE_BENCH_RUNS (default 3), the targets' order rotating. Issue 39 asks an encrypted full for 0.8 of
 * a plain one's throughput; issue 40 lets the chunk store meet it.
 */

const MiB = 1024 * 1024;
const out = (line: string) => process.stdout.write(`${line}\n`);

interface Measured {
  seconds: number;
  /** The point read back whole into a raw file and fsynced, as a disk image download or a full restore reads it. */
  restoreSeconds: number;
  targetCpu: number;
  clientCpu: number;
  storedMib: number;
}

type Target = (disk: string, size: number, dir: string, psk: { identity: string; key: string }, keysFile: string) => Promise<Measured>;

function qemuNbdTarget(encrypted: boolean): Target {
  return async (disk, size, dir, psk, keysFile) => {
    const file = join(dir, 'target.qcow2');
    const keyFile = join(dir, 'repo.key');
    writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    // the hub's keyring opens an encrypted file of a registered repository with its secret, as in a backup
    if (encrypted) imageKeys.register({ root: dir, name: 'bench', keyFile, fingerprint: readKeyFile(keyFile).fingerprint });
    try {
      if (encrypted) await createEncryptedQcow2(file, keyFile, { virtualSize: size });
      else await shell(`qemu-img create -q -f qcow2 '${file}' ${size}`);
      const port = await freePort();
      const runDir = new RunDirFiles(join(dir, 'run'));
      mkdirSync(runDir.dir, { recursive: true });
      runDir.writePsk(`bench-${port}`, psk);
      const pidFile = join(dir, `qemu-nbd-${port}.pid`);
      const args = benchExportArgs(port, file, pidFile, { readOnly: false, bitmap: undefined, tls: { pskDir: runDir.pskDir(`bench-${port}`), bind: '127.0.0.1' } });
      // --fork: the server outlives this shell, so it must not hold the shell's pipes open
      await shell(`${Object.entries(QEMU_NBD_ENV).map(([k, v]) => `${k}=${v}`).join(' ')} qemu-nbd ${args.map((a) => `'${a}'`).join(' ')} </dev/null >'${dir}/qemu-nbd.log' 2>&1 3>&-`);
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      await settle();
      const started = process.hrtime.bigint();
      const copy = await shell(`nbdcopy --connections=1 '${disk}' 'nbds://${psk.identity}@127.0.0.1:${port}/disk?tls-psk-file=${keysFile}'`);
      const targetCpu = cpuSeconds(pid);
      // its flush on exit is part of the write
      await stopPid(pid);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const restored = join(dir, 'restored.raw');
      const source = imageArgs(file, imageKeys.keyForImage(file));
      await settle();
      const restore = await shell(`qemu-img convert ${source.map((a) => `'${a}'`).join(' ')} -O raw '${restored}' && sync '${restored}'`);
      return { seconds, restoreSeconds: restore.wallS, targetCpu, clientCpu: copy.cpuS, storedMib: allocatedBytes(file) / MiB };
    } finally {
      imageKeys.unregister(dir);
    }
  };
}

function chunkTarget(encrypted: boolean): Target {
  return async (disk, size, dir, psk, keysFile) => {
    // as chunk-nbd opens it: chunks sealed and opened on worker threads, TLS and NBD on this one
    const workers = new ChunkWorkers(process.env.SENDENSE_BENCH_CT_THREADS ? { threads: Number(process.env.SENDENSE_BENCH_CT_THREADS) } : {});
    const store = await ChunkStore.open(join(dir, 'store'), { key: encrypted ? randomBytes(32) : null, workers });
    const writer = await store.writePoint(size, null);
    const server = await NbdServer.listenTcp('127.0.0.1', 0, { exportName: 'disk', writable: true, disk: writer, tls: { identity: psk.identity, key: Buffer.from(psk.key, 'hex') } });
    await settle();
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    const copy = await shell(`nbdcopy --connections=1 '${disk}' 'nbds://${psk.identity}@127.0.0.1:${server.port}/disk?tls-psk-file=${keysFile}'`);
    await server.close();
    await writer.commit('bench/rp-1/disk0');
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const used = process.cpuUsage(cpu);
    await writer.close();
    await settle();
    const restoreStarted = process.hrtime.bigint();
    await readBack(store, 'bench/rp-1/disk0', join(dir, 'restored.raw'));
    const restoreSeconds = Number(process.hrtime.bigint() - restoreStarted) / 1e9;
    await workers.close();
    return { seconds, restoreSeconds, targetCpu: (used.user + used.system) / 1e6, clientCpu: copy.cpuS, storedMib: allocatedBytes(join(dir, 'store')) / MiB };
  };
}

export async function runChunkTargetBench(): Promise<void> {
  const mib = Number(process.env.SENDENSE_BENCH_CT_MIB ?? 1024);
  const runs = Number(process.env.SENDENSE_BENCH_RUNS ?? 3);
  const base = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? tmpdir(), 'sendense-chunk-target-'));
  try {
    const disk = join(base, 'disk.raw');
    const size = mib * MiB;
    const text = Buffer.from(Array.from({ length: 20000 }, (_, i) => `2026-11-26T10:00:${String(i % 60).padStart(2, '0')}Z host app[${i % 977}]: request ${i} took ${i % 113} ms\n`).join(''));
    await shell(`head -c ${size / 2} /dev/urandom > '${disk}'`);
    const textPiece = join(base, 'text');
    writeFileSync(textPiece, text);
    await shell(`while [ $(stat -c %s '${disk}') -lt ${size} ]; do cat '${textPiece}' >> '${disk}'; done; truncate -s ${size} '${disk}'`);
    const psk = { identity: 'sendense', key: randomBytes(32).toString('hex') };
    const keysFile = join(base, 'keys.psk');
    writeFileSync(keysFile, `${psk.identity}:${psk.key}\n`, { mode: 0o600 });
    const targets: [string, Target][] = [
      ['qcow2, qemu-nbd (today, plain)', qemuNbdTarget(false)],
      ['qcow2 LUKS, qemu-nbd (today, encrypted)', qemuNbdTarget(true)],
      ['chunk store, hub NBD server, plain', chunkTarget(false)],
      ['chunk store, hub NBD server, encrypted', chunkTarget(true)],
    ];
    const results = new Map<string, Measured[]>(targets.map(([name]) => [name, []]));
    out(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}; disk ${mib} MiB (half random, half text), nbdcopy --connections=1 over TLS-PSK`);
    for (let round = 0; round < runs; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]);
      for (const [name, target] of order) {
        const dir = join(base, `r${round}-${name.replace(/\W+/g, '-')}`);
        mkdirSync(dir, { recursive: true });
        const measured = await target(disk, size, dir, psk, keysFile);
        results.get(name)!.push(measured);
        out(`  round ${round + 1} ${name}: ${(mib / measured.seconds).toFixed(0)} MiB/s written, ${(mib / measured.restoreSeconds).toFixed(0)} MiB/s read back, CPU target ${measured.targetCpu.toFixed(2)} s + nbdcopy ${measured.clientCpu.toFixed(2)} s, ${measured.storedMib.toFixed(0)} MiB stored`);
        rmSync(dir, { recursive: true, force: true });
      }
    }
    const rate = (name: string) => median(results.get(name)!.map((m) => mib / m.seconds));
    const plainQcow2 = rate(targets[0][0]);
    const restoreRate = (name: string) => median(results.get(name)!.map((m) => mib / m.restoreSeconds));
    const plainRestore = restoreRate(targets[0][0]);
    out(`medians of ${runs} rounds; ratios against today's plain qcow2 target`);
    out('| target | written MiB/s | ratio | target CPU s | MiB stored | read back MiB/s | ratio |');
    out('|---|---|---|---|---|---|---|');
    for (const [name] of targets) {
      const ms = results.get(name)!;
      out(`| ${name} | ${rate(name).toFixed(0)} | ${(rate(name) / plainQcow2).toFixed(2)} | ${median(ms.map((m) => m.targetCpu)).toFixed(2)} | ${median(ms.map((m) => m.storedMib)).toFixed(0)} | ${restoreRate(name).toFixed(0)} | ${(restoreRate(name) / plainRestore).toFixed(2)} |`);
    }
    out(`encrypted against plain, same layout: qcow2 ${(rate(targets[1][0]) / plainQcow2).toFixed(2)}, chunk store ${(rate(targets[3][0]) / rate(targets[2][0])).toFixed(2)} (issue 39: >= 0.8)`);
    out(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}
