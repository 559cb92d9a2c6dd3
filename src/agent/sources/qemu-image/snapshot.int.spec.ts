import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import execa from 'execa';
import {
  createImage,
  imageBitmaps,
  isWriteLocked,
  killAllMentioning,
  makeTempDir,
  MiB,
  nbdInfo,
  pidsMentioning,
  qemuIoWrite,
  qemuNbdPidsMentioning,
  readPattern,
  removeTempDir,
  startWritableQemuNbd,
  waitFor,
} from '../../../../test/fixtures/agent/qemu-images';
import { SnapshotError, SnapshotOpenError, VmRunningError } from './errors';
import { QemuImageSource, SNAPSHOT_DIR_PREFIX } from './qemu-image-source';

describe('QemuImageSource.openSnapshot (real qemu-nbd)', () => {
  let dir: string;
  let runDir: string;
  let source: QemuImageSource;
  const path = (f: string) => join(dir, f);

  beforeAll(async () => {
    dir = makeTempDir('qsnap');
    runDir = join(dir, 'run');
    mkdirSync(runDir);
    await createImage(path('vm1-disk0.qcow2'), 'qcow2', 64 * MiB);
    await createImage(path('vm1-disk1.qcow2'), 'qcow2', 32 * MiB);
    await createImage(path('vm1-disk2.img'), 'raw', 5 * MiB);
    await qemuIoWrite(path('vm1-disk0.qcow2'), [{ offset: 3 * MiB, length: 4096 }], 'qcow2', 0x2a);
    await qemuIoWrite(path('vm1-disk2.img'), [{ offset: MiB, length: 4096 }], 'raw', 0x2b);
    await execa('qemu-img', ['bitmap', '--add', path('vm1-disk0.qcow2'), 'sendense-P']);
    source = new QemuImageSource({
      runDir,
      stopTimeoutMs: 5_000,
      inventory: {
        vms: [
          {
            id: 'vm1',
            name: 'vm one',
            disks: [
              { id: 'disk0', path: path('vm1-disk0.qcow2') },
              { id: 'disk1', path: path('vm1-disk1.qcow2') },
              { id: 'disk2', path: path('vm1-disk2.img') },
            ],
          },
        ],
      },
    });
  });

  afterEach(async () => {
    await source.closeAll();
    // No test may leave a qemu-nbd behind: every snapshot process names a socket under runDir.
    expect(await pidsMentioning(runDir)).toEqual([]);
    expect(readdirSync(runDir)).toEqual([]);
  });

  afterAll(async () => {
    await killAllMentioning(dir);
    removeTempDir(dir);
  });

  it('opens every disk read-only before returning; nbdinfo sees each size; close stops them all and is idempotent', async () => {
    const snapshot = await source.openSnapshot('vm1', { bitmaps: { disk0: 'sendense-P' } });
    expect(snapshot.vmId).toBe('vm1');
    expect(snapshot.snapshotId).toMatch(/^[0-9a-f-]{36}$/);
    expect(snapshot.disks.map((d) => [d.diskId, d.format, d.virtualSize, d.exportName, d.bitmap])).toEqual([
      ['disk0', 'qcow2', 64 * MiB, 'disk', 'sendense-P'],
      ['disk1', 'qcow2', 32 * MiB, 'disk', undefined],
      ['disk2', 'raw', 5 * MiB, 'disk', undefined],
    ]);
    expect(snapshot.pids).toHaveLength(3);
    for (const disk of snapshot.disks) {
      expect(disk.uri).toBe(`nbd+unix:///disk?socket=${disk.socketPath}`);
      expect(disk.socketPath!.startsWith(join(runDir, SNAPSHOT_DIR_PREFIX))).toBe(true);
      const info = await nbdInfo(disk.uri);
      expect(info['export-size']).toBe(disk.virtualSize);
      expect(info.is_read_only).toBe(true);
      if (disk.bitmap) expect(info.contexts).toContain('qemu:dirty-bitmap:sendense-P');
    }
    // The data is there: read through NBD with a real client.
    const { stdout } = await execa('nbdcopy', [snapshot.disks[2].uri, '-'], { encoding: null, maxBuffer: 16 * MiB });
    expect((stdout as unknown as Buffer).subarray(MiB, MiB + 4096).every((b) => b === 0x2b)).toBe(true);
    // A powered-off VM stays powered off while the snapshot is open: writers are locked out.
    expect((await execa('qemu-io', ['-c', 'write 0 4k', path('vm1-disk1.qcow2')], { reject: false })).stderr).toMatch(/Failed to get "write" lock/);
    // Two clients at once (--shared=4, --persistent): a second connection neither blocks nor kills the export.
    await Promise.all([nbdInfo(snapshot.disks[0].uri), nbdInfo(snapshot.disks[0].uri)]);
    await expect(nbdInfo(snapshot.disks[0].uri)).resolves.toBeDefined();

    const snapDir = join(runDir, readdirSync(runDir)[0]);
    const pids = snapshot.pids;
    await Promise.all([snapshot.close(), snapshot.close()]);
    await snapshot.close();
    expect(snapshot.closed).toBe(true);
    expect(existsSync(snapDir)).toBe(false);
    for (const pid of pids) expect(existsSync(`/proc/${pid}`)).toBe(false);
    // A read-only qemu-nbd leaves the bitmap as it found it.
    expect(await imageBitmaps(path('vm1-disk0.qcow2'))).toEqual([{ name: 'sendense-P', flags: ['auto'], granularity: 65536 }]);
    expect(await readPattern(path('vm1-disk0.qcow2'), 3 * MiB, 4096, 0x2a)).toBe(true);
  });

  it('refuses a disk locked by a running writer, naming it, and leaves no qemu-nbd of its own behind', async () => {
    const writer = await startWritableQemuNbd(path('vm1-disk1.qcow2'), path('writer.sock'));
    try {
      const error = await source.openSnapshot('vm1').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(VmRunningError);
      expect(error).toMatchObject({ vmId: 'vm1', diskId: 'disk1', path: path('vm1-disk1.qcow2') });
      expect((error as Error).message).toMatch(/^VM vm1 appears to be running: disk disk1 \(.*vm1-disk1\.qcow2\) is locked by another process .*Failed to get shared "write" lock/);
      expect(await pidsMentioning(runDir)).toEqual([]);
      expect(readdirSync(runDir)).toEqual([]);
      expect(source.openSnapshots()).toEqual([]);
      // The writer is untouched.
      expect(writer.child.exitCode).toBeNull();
    } finally {
      await writer.stop();
    }
    // Once the "VM" is shut down, the snapshot opens.
    const snapshot = await source.openSnapshot('vm1');
    expect(snapshot.disks).toHaveLength(3);
    await snapshot.close();
  });

  it('fails as a whole when one disk cannot be exported (missing bitmap) and closes the disks it had opened', async () => {
    const error = await source.openSnapshot('vm1', { bitmaps: { disk0: 'sendense-P', disk1: 'sendense-nope' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SnapshotError);
    expect((error as Error).message).toBe(`cannot open a snapshot of VM vm1: disk disk1 (${path('vm1-disk1.qcow2')}): Bitmap 'sendense-nope' is not found`);
    expect(await isWriteLocked(path('vm1-disk0.qcow2'))).toBe(false);
  });

  it('refuses bitmaps on raw disks or unknown disks before starting anything', async () => {
    await expect(source.openSnapshot('vm1', { bitmaps: { disk2: 'sendense-P' } })).rejects.toThrow(/disk disk2 of VM vm1 is raw/);
    await expect(source.openSnapshot('vm1', { bitmaps: { disk9: 'sendense-P' } })).rejects.toThrow(/VM vm1 has no disk disk9/);
  });

  it('reports a qemu-nbd that cannot be run at all', async () => {
    const broken = new QemuImageSource({ runDir, qemuNbdBinary: join(dir, 'no-such-qemu-nbd'), inventory: { vms: [{ id: 'v', name: 'v', disks: [{ id: 'd0', path: path('vm1-disk1.qcow2') }] }] } });
    await expect(broken.openSnapshot('v')).rejects.toThrow(/cannot open a snapshot of VM v: disk d0 .*cannot run qemu-nbd: spawn .*no-such-qemu-nbd ENOENT/);
  });

  it('allows one snapshot per VM at a time, and no bitmap changes while it is open', async () => {
    const snapshot = await source.openSnapshot('vm1');
    await expect(source.openSnapshot('vm1')).rejects.toBeInstanceOf(SnapshotOpenError);
    await expect(source.prepareBackup('vm1', { newPointId: 'X', sincePointId: null })).rejects.toThrow(`cannot prepare a backup of VM vm1: snapshot ${snapshot.snapshotId} is still open`);
    await expect(source.completeBackup('vm1', { newPointId: 'X', sincePointId: null, success: false })).rejects.toBeInstanceOf(SnapshotOpenError);
    // Reading the chain state is fine while our read-only exports hold the images.
    await expect(source.brokenChainReason('vm1', 'P')).resolves.toBe('bitmap sendense-P on disk1 is missing; disk disk2 is raw: it cannot keep persistent dirty bitmaps (full backups only)');
    await snapshot.close();
  });

  it('keeps every qemu-nbd its own child: a qemu-nbd that dies is noticed, and close still succeeds', async () => {
    const snapshot = await source.openSnapshot('vm1');
    const [first] = snapshot.pids;
    expect(Number((await execa('ps', ['-o', 'ppid=', '-p', String(first)])).stdout.trim())).toBe(process.pid);
    process.kill(first, 'SIGKILL');
    await waitFor(() => snapshot.deadDisks().length === 1, 5_000, 'the dead qemu-nbd to be noticed');
    expect(snapshot.deadDisks()[0].diskId).toBe('disk0');
    await snapshot.close();
  });

  it('cleanupLeftovers() stops qemu-nbd processes and removes directories a killed agent left in runDir', async () => {
    const leftover = join(runDir, `${SNAPSHOT_DIR_PREFIX}crashed`);
    mkdirSync(leftover);
    // As a SIGKILLed agent leaves it: not our child any more (setsid, the shell exits).
    const sock = join(leftover, 'd0.sock');
    spawn('sh', ['-c', `setsid qemu-nbd -r --persistent --shared=4 -f qcow2 -k ${sock} -x disk ${path('vm1-disk0.qcow2')} </dev/null >/dev/null 2>&1 &`], { stdio: 'ignore' });
    await waitFor(() => existsSync(sock), 5_000, 'leftover qemu-nbd socket');
    const pids = await qemuNbdPidsMentioning(leftover);
    expect(pids).toHaveLength(1);
    const [pid] = pids;
    const result = await source.cleanupLeftovers();
    expect(result).toEqual({ killed: [pid], removedDirs: [leftover] });
    expect(await pidsMentioning(leftover)).toEqual([]);
    expect(await isWriteLocked(path('vm1-disk0.qcow2'))).toBe(false);
  });
});
