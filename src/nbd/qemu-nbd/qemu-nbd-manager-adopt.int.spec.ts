import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import execa from 'execa';
import { createQcow2, MiB } from '../../../test/fixtures/qemu-nbd-images';
import { isRunning, killAllMentioning, nbdinfoJson, spawnLeftoverQemuNbd, startHubProcess, waitFor } from '../../../test/fixtures/qemu-nbd-processes';
import { QemuNbdManager } from './qemu-nbd-manager';
import type { PidFileRecord, QemuNbdExit, QemuNbdExportSpec } from './qemu-nbd.types';
import { RunDirFiles } from './run-dir-files';

// Ports 10940-10959 belong to this file.
describe('QemuNbdManager after a hub restart', () => {
  let dir: string;
  let runDir: string;
  let files: RunDirFiles;
  let manager: QemuNbdManager;
  const exits: QemuNbdExit[] = [];
  const exitSeenAt = new Map<string, number>();

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-qemu-nbd-adopt-'));
    runDir = join(dir, 'run');
    mkdirSync(runDir);
    files = new RunDirFiles(runDir);
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

  function spec(port: number, file: string): QemuNbdExportSpec {
    return { leaseId: randomUUID(), port, file, format: 'qcow2', readOnly: false, exportName: 'disk' };
  }

  /** What a hub that was SIGKILLed leaves: a detached qemu-nbd that is not our child, and its pid file. */
  async function leftover(port: number): Promise<PidFileRecord> {
    const s = spec(port, await createQcow2(join(dir, `leftover-${port}.qcow2`), 16 * MiB));
    const args = new QemuNbdManager({ runDir, onExit: () => undefined }).buildArgs(s);
    const pid = await spawnLeftoverQemuNbd(args, files.logPath(s.leaseId), files.qemuPidPath(s.leaseId));
    const record: PidFileRecord = { leaseId: s.leaseId, pid, port, file: s.file, args, startedAt: new Date().toISOString() };
    files.writeRecord(record);
    return record;
  }

  function filesOf(leaseId: string): string[] {
    return readdirSync(runDir).filter((name) => name.includes(leaseId));
  }

  it('an export outlives a Ctrl-C to its hub and a SIGKILL of the hub, then a new manager adopts it', async () => {
    const s = spec(10950, await createQcow2(join(dir, 'hub.qcow2'), 16 * MiB));
    const { hubPid, running } = await startHubProcess(__dirname, dir, runDir, s);
    process.kill(-hubPid, 'SIGINT'); // what the terminal does to its foreground process group on Ctrl-C
    await new Promise((r) => setTimeout(r, 200));
    expect(isRunning(running.pid)).toBe(true);

    process.kill(hubPid, 'SIGKILL');
    await waitFor(() => !isRunning(hubPid), 2_000, 'the stand-in hub to die');
    await new Promise((r) => setTimeout(r, 200));
    expect(isRunning(running.pid)).toBe(true);
    expect((await nbdinfoJson('nbd://127.0.0.1:10950/disk'))['export-size']).toBe(16 * MiB);

    const [record] = manager.readPidFiles();
    expect(record).toEqual({ leaseId: s.leaseId, pid: running.pid, port: 10950, file: s.file, args: expect.any(Array), startedAt: expect.any(String) });
    expect(manager.adopt(record)).toBe(true);
    await manager.stop(s.leaseId);
    expect(isRunning(running.pid)).toBe(false);
    expect(filesOf(s.leaseId)).toEqual([]);
  });

  it('adopts a leftover export and notices within 2 s when it is killed from outside', async () => {
    const record = await leftover(10940);
    expect(manager.readPidFiles()).toEqual([record]);
    expect(manager.adopt(record)).toBe(true);
    expect(manager.list()).toEqual([{ ...record, startedAt: new Date(record.startedAt), adopted: true }]);
    expect(manager.readPidFiles()).toEqual([]); // tracked now, no longer a leftover
    expect((await nbdinfoJson('nbd://127.0.0.1:10940/disk'))['export-size']).toBe(16 * MiB);

    const killedAt = performance.now();
    await execa('kill', ['-9', String(record.pid)]);
    await waitFor(() => exitSeenAt.has(record.leaseId), 2_000, 'onExit of the adopted export');
    const afterMs = (exitSeenAt.get(record.leaseId) as number) - killedAt;
    const exit = exits.find((e) => e.leaseId === record.leaseId) as QemuNbdExit;
    expect(afterMs).toBeLessThan(2_000);
    expect(exit).toMatchObject({ pid: record.pid, code: null, expected: false });
    // PID 1 may already have reaped it, which takes the status with it.
    expect([null, 'SIGKILL']).toContain(exit.signal);
    expect(filesOf(record.leaseId)).toEqual([]);
    expect(manager.list()).toEqual([]);
  });

  it('stops an adopted export; its port and image are free again at once', async () => {
    const record = await leftover(10941);
    expect(manager.adopt(record)).toBe(true);
    await manager.stop(record.leaseId);
    expect(isRunning(record.pid)).toBe(false);
    expect(exits.find((e) => e.leaseId === record.leaseId)).toMatchObject({ pid: record.pid, expected: true });
    expect(filesOf(record.leaseId)).toEqual([]);

    const again = await manager.start({ ...spec(10941, record.file), leaseId: record.leaseId });
    expect(again.adopted).toBe(false);
    await manager.stop(record.leaseId);
  });

  it('an export its manager forgot (left for the next hub run) is that run\'s: stopped by it, its exit is told to it alone', async () => {
    const earlierExits: QemuNbdExit[] = [];
    const earlier = new QemuNbdManager({ runDir, onExit: (exit) => earlierExits.push(exit) });
    const s = spec(10952, await createQcow2(join(dir, 'forgotten.qcow2'), 16 * MiB));
    const running = await earlier.start(s);
    earlier.forget(s.leaseId);
    expect(earlier.list()).toEqual([]);
    const record = manager.readPidFiles().find((r) => r.leaseId === s.leaseId)!;
    expect(manager.adopt(record)).toBe(true);
    await manager.stop(s.leaseId);
    expect(isRunning(running.pid)).toBe(false);
    // the earlier manager still watches its child's exit, as a hub application closed in a process that goes on does
    await new Promise((r) => setTimeout(r, 300));
    expect(earlierExits).toEqual([]);
    expect(exits.filter((e) => e.leaseId === s.leaseId)).toEqual([expect.objectContaining({ pid: running.pid, expected: true })]);
    expect(filesOf(s.leaseId)).toEqual([]);
  });

  it('does not adopt a dead pid, a pid running other arguments, or another program', async () => {
    const dead = await leftover(10942);
    process.kill(dead.pid, 'SIGKILL');
    await waitFor(() => !isRunning(dead.pid), 2_000, 'the leftover to die');
    expect(manager.adopt(dead)).toBe(false);

    const alive = await leftover(10943);
    expect(manager.adopt({ ...alive, args: alive.args.map((a) => (a === '10943' ? '10944' : a)) })).toBe(false);
    expect(manager.adopt({ ...alive, args: alive.args.slice(0, -1) })).toBe(false);
    expect(manager.adopt({ ...alive, pid: process.pid })).toBe(false);
    expect(manager.list()).toEqual([]);
    expect(exits.some((e) => e.leaseId === alive.leaseId || e.leaseId === dead.leaseId)).toBe(false);

    await manager.killOrphan(alive);
    await manager.killOrphan(dead);
  });

  it('killOrphan stops a leftover nobody owns and removes its pid file', async () => {
    const record = await leftover(10945);
    await manager.killOrphan(record);
    expect(isRunning(record.pid)).toBe(false);
    expect(filesOf(record.leaseId)).toEqual([]);
    expect(manager.readPidFiles()).toEqual([]);
    expect(exits.some((e) => e.leaseId === record.leaseId)).toBe(false);
  });

  it('killOrphan leaves a process alone when its command line does not match, but drops the stale record', async () => {
    const record = await leftover(10946);
    const stale = { ...record, leaseId: randomUUID(), args: ['-p', '1'] };
    files.writeRecord(stale);
    await manager.killOrphan(stale);
    expect(isRunning(record.pid)).toBe(true);
    expect(existsSync(files.recordPath(stale.leaseId))).toBe(false);
    await manager.killOrphan(record);
  });

  it('killOrphan refuses a lease the manager tracks', async () => {
    const record = await leftover(10947);
    manager.adopt(record);
    await expect(manager.killOrphan(record)).rejects.toThrow(/use stop\(\)/);
    expect(isRunning(record.pid)).toBe(true);
    await manager.stop(record.leaseId);
  });

  it('start() refuses a lease whose earlier qemu-nbd still serves it', async () => {
    const record = await leftover(10948);
    await expect(manager.start({ ...spec(10949, record.file), leaseId: record.leaseId })).rejects.toThrow(/from an earlier run still serves this lease/);
    expect(isRunning(record.pid)).toBe(true);
    await manager.killOrphan(record);
  });

  it('records a qemu-nbd as it is spawned: one whose hub died before it served is found by the next hub and stopped', async () => {
    const s = spec(10951, await createQcow2(join(dir, 'starting.qcow2'), 16 * MiB));
    const first = new QemuNbdManager({ runDir, onExit: () => undefined });
    const starting = first.start(s);
    // what a hub killed at this moment leaves on disk: the record naming the process it spawned
    const record = files.readRecord(s.leaseId);
    expect(record).toMatchObject({ leaseId: s.leaseId, port: 10951, file: s.file });
    const running = await starting;
    expect(running.pid).toBe(record!.pid);
    // the next hub's manager did not start it; it finds it by the record and stops it (reconcile does this for a lease no one owns)
    const next = new QemuNbdManager({ runDir, onExit: () => undefined });
    const found = next.readPidFiles().find((r) => r.leaseId === s.leaseId);
    expect(found?.pid).toBe(record!.pid);
    await next.killOrphan(found!);
    await waitFor(() => !isRunning(record!.pid), 5000, 'the orphan to exit');
    expect(filesOf(s.leaseId)).toEqual([]);
  });
});
