import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import execa from 'execa';
import { createQcow2, imagesIdentical, MiB, writeRandomRaw } from '../../../test/fixtures/qemu-nbd-images';
import { isRunning, killAllMentioning, nbdinfoJson, waitFor } from '../../../test/fixtures/qemu-nbd-processes';
import { QEMU_NBD_ENV, READ_ONLY_QEMU_NBD_ENV } from '../../qemu/qemu-nbd-launcher';
import { QemuNbdManager } from './qemu-nbd-manager';
import type { QemuNbdExit, QemuNbdExportSpec } from './qemu-nbd.types';

// Ports 10900-10919 belong to this file (the other qemu-nbd specs may run in parallel).
describe('QemuNbdManager with real qemu-nbd', () => {
  let dir: string;
  let runDir: string;
  let manager: QemuNbdManager;
  const exits: QemuNbdExit[] = [];
  const exitSeenAt = new Map<string, number>();

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-qemu-nbd-'));
    runDir = join(dir, 'run');
    manager = new QemuNbdManager({
      runDir,
      onExit: (exit) => {
        exitSeenAt.set(exit.leaseId, performance.now());
        exits.push(exit);
      },
    });
  });

  afterAll(async () => {
    await manager.stopAll();
    const leftovers = await killAllMentioning(dir);
    rmSync(dir, { recursive: true, force: true });
    expect(leftovers).toEqual([]);
  });

  async function image(name: string, size = 64 * MiB, bitmap?: string): Promise<string> {
    return createQcow2(join(dir, `${name}.qcow2`), size, bitmap);
  }

  function spec(port: number, file: string, patch: Partial<QemuNbdExportSpec> = {}): QemuNbdExportSpec {
    return { leaseId: randomUUID(), port, file, format: 'qcow2', readOnly: false, exportName: `disk-${port}`, ...patch };
  }

  async function exitOf(leaseId: string, timeoutMs = 2_000): Promise<{ exit: QemuNbdExit; afterMs: number }> {
    const afterMs = await waitFor(() => exits.some((e) => e.leaseId === leaseId), timeoutMs, `onExit for ${leaseId}`);
    return { exit: exits.find((e) => e.leaseId === leaseId) as QemuNbdExit, afterMs };
  }

  /** A client that completed nothing but still holds one of the export's connection slots. */
  function holdConnection(port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('error', reject);
      socket.once('data', (greeting) => (greeting.subarray(0, 8).toString() === 'NBDMAGIC' ? resolve(socket) : reject(new Error('not NBD'))));
    });
  }

  it('serves a qcow2 to several clients at once and keeps running after they leave', async () => {
    const s = spec(10900, await image('shared'), { readOnly: true });
    // reads of a restore point keep the page cache's readahead
    expect(manager.buildArgs(s)).toContain('--cache=writeback');
    const running = await manager.start(s);
    expect(running).toMatchObject({ leaseId: s.leaseId, port: 10900, file: s.file, adopted: false });
    expect(manager.list().map((e) => e.leaseId)).toEqual([s.leaseId]);
    expect(JSON.parse(readFileSync(join(runDir, `qemu-nbd-${s.leaseId}.json`), 'utf8'))).toMatchObject({ pid: running.pid, port: 10900, args: running.args });

    const uri = `nbd://127.0.0.1:10900/${s.exportName}`;
    const held = await holdConnection(10900);
    const [a, b] = await Promise.all([nbdinfoJson(uri), nbdinfoJson(uri)]);
    expect(a['export-size']).toBe(64 * MiB);
    expect(b['export-size']).toBe(64 * MiB);
    expect(a.is_read_only).toBe(true);
    held.destroy();

    await new Promise((r) => setTimeout(r, 200));
    expect(isRunning(running.pid)).toBe(true);
    expect((await nbdinfoJson(uri))['export-size']).toBe(64 * MiB);
    expect(exits).toEqual([]);
    await manager.stop(s.leaseId);
  });

  it('runs qemu-nbd in its own session and process group, so a Ctrl-C to the hub does not reach it', async () => {
    const s = spec(10901, await image('group'), { readOnly: true });
    const { pid } = await manager.start(s);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ').slice(2, 4).map(Number);
    expect({ pgrp, session }).toEqual({ pgrp: pid, session: pid });
    expect(pgrp).not.toBe(Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[2]));
    await manager.stop(s.leaseId);
  });

  it("runs qemu-nbd with malloc tuned to recycle request buffers, and glibc takes the tunables", async () => {
    const s = spec(10909, await image('env'), { readOnly: true });
    const { pid } = await manager.start(s);
    const tunables = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').find((v) => v.startsWith('GLIBC_TUNABLES='));
    // glibc 2.36 parses the variable in place and leaves it cut at the first ':'
    expect(tunables?.length).toBeGreaterThan('GLIBC_TUNABLES=glibc.malloc.'.length);
    expect(`GLIBC_TUNABLES=${QEMU_NBD_ENV.GLIBC_TUNABLES}`.startsWith(tunables!)).toBe(true);
    await manager.stop(s.leaseId);
    // a tunable glibc did not know would be ignored silently: ld.so lists the ones it took
    const { stdout } = await execa('/lib64/ld-linux-x86-64.so.2', ['--list-tunables'], { env: { GLIBC_TUNABLES: QEMU_NBD_ENV.GLIBC_TUNABLES } });
    expect(stdout).toMatch(/glibc\.malloc\.mmap_threshold: 0x2000000 /);
    expect(stdout).toMatch(/glibc\.malloc\.trim_threshold: 0x4000000 /);
    // a read-only export's heap also in transparent huge pages
    const readOnly = await execa('/lib64/ld-linux-x86-64.so.2', ['--list-tunables'], { env: { GLIBC_TUNABLES: READ_ONLY_QEMU_NBD_ENV.GLIBC_TUNABLES } });
    expect(readOnly.stdout).toMatch(/glibc\.malloc\.hugetlb: 0x1 /);
    expect(readOnly.stdout).toMatch(/glibc\.malloc\.mmap_threshold: 0x2000000 /);
  });

  it('exposes a dirty bitmap as the qemu:dirty-bitmap meta context', async () => {
    const s = spec(10902, await image('bitmap', 64 * MiB, 'sendense-b1'), { readOnly: true, bitmap: 'sendense-b1' });
    await manager.start(s);
    expect((await nbdinfoJson(`nbd://127.0.0.1:10902/${s.exportName}`)).contexts).toContain('qemu:dirty-bitmap:sendense-b1');
    await manager.stop(s.leaseId);
  });

  it('takes writes: nbdcopy of a raw file into a writable export reads back identical after stop', async () => {
    const raw = join(dir, 'source.raw');
    writeRandomRaw(raw, 32 * MiB);
    const file = await image('target', 32 * MiB);
    const s = spec(10903, file);
    const { args } = await manager.start(s);
    // the test dir is on a filesystem with O_DIRECT (supportsDirectIo is checked in qemu-nbd-args.int.spec.ts)
    expect(args).toContain('--cache=none');
    await execa('nbdcopy', [raw, `nbd://127.0.0.1:10903/${s.exportName}`]);
    await manager.stop(s.leaseId);
    expect(await imagesIdentical(raw, file)).toBe(true);
  });

  it('keeps flushed writes when the server is then killed with SIGKILL', async () => {
    const raw = join(dir, 'flushed.raw');
    writeRandomRaw(raw, 32 * MiB);
    const file = await image('flushed', 32 * MiB);
    const s = spec(10904, file);
    const { pid } = await manager.start(s);
    await execa('nbdcopy', ['--flush', raw, `nbd://127.0.0.1:10904/${s.exportName}`]);
    process.kill(pid, 'SIGKILL');
    await exitOf(s.leaseId);
    expect(await imagesIdentical(raw, file)).toBe(true);
  });

  it('reports a kill -9 from outside at once: expected false, SIGKILL, stderr tail, pid file removed', async () => {
    const s = spec(10905, await image('killed'));
    const { pid } = await manager.start(s);
    const killedAt = performance.now();
    await execa('kill', ['-9', String(pid)]);
    const { exit } = await exitOf(s.leaseId);
    const afterMs = (exitSeenAt.get(s.leaseId) as number) - killedAt;
    expect(exit).toEqual({ leaseId: s.leaseId, pid, code: null, signal: 'SIGKILL', stderrTail: expect.any(String), expected: false });
    expect(afterMs).toBeLessThan(500);
    expect(existsSync(join(runDir, `qemu-nbd-${s.leaseId}.json`))).toBe(false);
    expect(existsSync(join(runDir, `qemu-nbd-${s.leaseId}.pid`))).toBe(false);
    expect(manager.list().some((e) => e.leaseId === s.leaseId)).toBe(false);
  });

  it('stop(): the process is really gone, onExit says expected, the pid file is removed', async () => {
    const s = spec(10906, await image('stopped'));
    const { pid } = await manager.start(s);
    await manager.stop(s.leaseId);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    const { exit } = await exitOf(s.leaseId, 0);
    expect(exit).toMatchObject({ pid, code: 0, signal: null, expected: true });
    expect(existsSync(join(runDir, `qemu-nbd-${s.leaseId}.json`))).toBe(false);
    expect(manager.list()).toEqual([]);
    await manager.stop(s.leaseId); // already stopped: a no-op
  });

  it('refuses a second export for the same lease or the same port without spawning anything', async () => {
    const s = spec(10907, await image('dup'));
    const { pid } = await manager.start(s);
    await expect(manager.start({ ...s, port: 10908 })).rejects.toThrow(/already has an export/);
    await expect(manager.start({ ...s, leaseId: randomUUID() })).rejects.toThrow(/port 10907 is already used/);
    expect(manager.list().map((e) => e.pid)).toEqual([pid]);
    await manager.stop(s.leaseId);
  });

  it('stopAll() stops every export', async () => {
    const pids = [];
    for (const port of [10910, 10911, 10912]) pids.push((await manager.start(spec(port, await image(`all-${port}`), { readOnly: true }))).pid);
    await manager.stopAll();
    expect(manager.list()).toEqual([]);
    expect(pids.filter((pid) => existsSync(`/proc/${pid}`))).toEqual([]);
  });
});
