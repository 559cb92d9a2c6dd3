import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  createImage,
  dirtyExtents,
  expectedDirty,
  imageBitmaps,
  KiB,
  killAllMentioning,
  makeTempDir,
  MiB,
  nbdSize,
  nbdWrite,
  pidsMentioning,
  qemuIoWrite,
  removeTempDir,
  startQemuIoWriter,
  startWritableQemuNbd,
  type Write,
  type Writer,
} from '../../../../test/fixtures/agent/qemu-images';
import { VmRunningError } from './errors';
import { QemuImageSource } from './qemu-image-source';
import type { PreparedBackup } from './types';

/**
 * The dirty-bitmap lifecycle against real qcow2 images: writes go through
 * qemu-io (as a VM's would go through qemu), changed ranges are read back the
 * way the data mover reads them (NBD meta context qemu:dirty-bitmap:NAME,
 * here with nbdinfo --map).
 */
describe('QemuImageSource change tracking (real images, qemu-img bitmap, qemu-nbd -B)', () => {
  let dir: string;
  let runDir: string;
  const writers: Writer[] = [];
  const path = (f: string) => join(dir, f);

  beforeAll(() => {
    dir = makeTempDir('qcbt');
    runDir = join(dir, 'run');
    mkdirSync(runDir);
  });
  afterEach(async () => {
    for (const w of writers.splice(0)) await w.kill9();
    expect(await pidsMentioning(runDir)).toEqual([]);
    expect(readdirSync(runDir)).toEqual([]);
  });
  afterAll(async () => {
    await killAllMentioning(dir);
    removeTempDir(dir);
  });

  async function makeVm(vmId: string, disks: Array<{ id: string; format: 'qcow2' | 'raw'; size: number }>): Promise<QemuImageSource> {
    for (const d of disks) await createImage(path(`${vmId}-${d.id}.${d.format}`), d.format, d.size);
    return new QemuImageSource({
      runDir,
      stopTimeoutMs: 5_000,
      inventory: { vms: [{ id: vmId, name: vmId, disks: disks.map((d) => ({ id: d.id, path: path(`${vmId}-${d.id}.${d.format}`) })) }] },
    });
  }

  /** Opens the snapshot the way a backup does and returns, per disk, the dirty extents of the exported bitmap. */
  async function changedRanges(source: QemuImageSource, vmId: string, prepared: PreparedBackup): Promise<Record<string, Write[]>> {
    const snapshot = await source.openSnapshot(vmId, { bitmaps: prepared.bitmaps });
    try {
      const result: Record<string, Write[]> = {};
      for (const disk of snapshot.disks) {
        expect(await nbdSize(disk.uri)).toBe(disk.virtualSize);
        if (disk.bitmap) result[disk.diskId] = await dirtyExtents(disk.uri, disk.bitmap);
      }
      return result;
    } finally {
      await snapshot.close();
    }
  }

  async function bitmapsOf(source: QemuImageSource, vmId: string): Promise<Record<string, string[]>> {
    const states = await source.bitmaps(vmId);
    return Object.fromEntries(states.map((s) => [s.diskId, s.bitmaps.map((b) => `${b.name}${b.enabled ? '' : ' (disabled)'}${b.inUse ? ' (in-use)' : ''}`)]));
  }

  it('full A -> writes -> incremental B fails (more writes during B) -> incremental C since A covers everything -> only sendense-C remains', async () => {
    const source = await makeVm('pg', [
      { id: 'disk0', format: 'qcow2', size: 64 * MiB },
      { id: 'disk1', format: 'qcow2', size: 128 * MiB },
    ]);

    // Full backup A.
    const a = await source.prepareBackup('pg', { newPointId: 'A', sincePointId: null });
    expect(a).toMatchObject({ mode: 'full', reason: 'no previous restore point to continue from', bitmaps: {} });
    expect(a.disks.map((d) => [d.diskId, d.mode, d.newBitmap])).toEqual([
      ['disk0', 'full', 'sendense-A'],
      ['disk1', 'full', 'sendense-A'],
    ]);
    expect(await changedRanges(source, 'pg', a)).toEqual({});
    expect(await source.completeBackup('pg', { newPointId: 'A', sincePointId: null, success: true })).toEqual({
      vmId: 'pg',
      success: true,
      complete: true,
      disks: [
        { diskId: 'disk0', removed: [], warnings: [] },
        { diskId: 'disk1', removed: [], warnings: [] },
      ],
    });
    expect(await bitmapsOf(source, 'pg')).toEqual({ disk0: ['sendense-A'], disk1: ['sendense-A'] });

    // Writes after A, scattered, some unaligned and one across a granule boundary.
    const w1 = {
      disk0: [
        { offset: 1 * MiB, length: 4 * KiB },
        { offset: 10 * MiB + 100, length: 100 * KiB },
        { offset: 30 * MiB - 4 * KiB, length: 8 * KiB },
      ],
      disk1: [{ offset: 100 * MiB, length: 64 * KiB }],
    };
    await qemuIoWrite(path('pg-disk0.qcow2'), w1.disk0);
    await qemuIoWrite(path('pg-disk1.qcow2'), w1.disk1);

    // Incremental B since A.
    const b = await source.prepareBackup('pg', { newPointId: 'B', sincePointId: 'A' });
    expect(b.mode).toBe('incremental');
    expect(b.bitmaps).toEqual({ disk0: 'sendense-A', disk1: 'sendense-A' });
    expect(await bitmapsOf(source, 'pg')).toEqual({ disk0: ['sendense-A', 'sendense-B'], disk1: ['sendense-A', 'sendense-B'] });
    // Writes during B, before its snapshot (after it they cannot happen: the snapshot locks writers out).
    const w2 = { disk0: [{ offset: 40 * MiB, length: 4 * KiB }], disk1: [{ offset: 50 * MiB, length: 200 * KiB }] };
    await qemuIoWrite(path('pg-disk0.qcow2'), w2.disk0);
    await qemuIoWrite(path('pg-disk1.qcow2'), w2.disk1);
    expect(await changedRanges(source, 'pg', b)).toEqual({
      disk0: expectedDirty([...w1.disk0, ...w2.disk0]),
      disk1: expectedDirty([...w1.disk1, ...w2.disk1]),
    });
    // More writes after B's snapshot closed, before B is declared failed.
    const w3 = { disk0: [{ offset: 60 * MiB, length: 4 * KiB }], disk1: [] as Write[] };
    await qemuIoWrite(path('pg-disk0.qcow2'), w3.disk0);
    const failed = await source.completeBackup('pg', { newPointId: 'B', sincePointId: 'A', success: false });
    expect(failed.disks).toEqual([
      { diskId: 'disk0', removed: ['sendense-B'], merged: { from: 'sendense-B', into: 'sendense-A' }, warnings: [] },
      { diskId: 'disk1', removed: ['sendense-B'], merged: { from: 'sendense-B', into: 'sendense-A' }, warnings: [] },
    ]);
    expect(await bitmapsOf(source, 'pg')).toEqual({ disk0: ['sendense-A'], disk1: ['sendense-A'] });
    // Idempotent.
    expect((await source.completeBackup('pg', { newPointId: 'B', sincePointId: 'A', success: false })).disks[0]).toEqual({ diskId: 'disk0', removed: [], warnings: [] });

    // Incremental C since A again: the writes before B, during B and after B's snapshot.
    const c = await source.prepareBackup('pg', { newPointId: 'C', sincePointId: 'A' });
    expect(c.mode).toBe('incremental');
    expect(await changedRanges(source, 'pg', c)).toEqual({
      disk0: expectedDirty([...w1.disk0, ...w2.disk0, ...w3.disk0]),
      disk1: expectedDirty([...w1.disk1, ...w2.disk1]),
    });
    const done = await source.completeBackup('pg', { newPointId: 'C', sincePointId: 'A', success: true });
    expect(done.disks.map((d) => d.removed)).toEqual([['sendense-A'], ['sendense-A']]);
    expect(await imageBitmaps(path('pg-disk0.qcow2'))).toEqual([{ name: 'sendense-C', flags: ['auto'], granularity: 64 * KiB }]);
    expect(await imageBitmaps(path('pg-disk1.qcow2'))).toEqual([{ name: 'sendense-C', flags: ['auto'], granularity: 64 * KiB }]);

    // The new generation: D since C sees exactly what was written after C's prepare.
    const w4 = [{ offset: 5 * MiB, length: 1 }];
    await qemuIoWrite(path('pg-disk1.qcow2'), w4);
    const d = await source.prepareBackup('pg', { newPointId: 'D', sincePointId: 'C' });
    expect(await changedRanges(source, 'pg', d)).toEqual({ disk0: [], disk1: expectedDirty(w4) });
    await source.completeBackup('pg', { newPointId: 'D', sincePointId: 'C', success: true });
    expect(await bitmapsOf(source, 'pg')).toEqual({ disk0: ['sendense-D'], disk1: ['sendense-D'] });
  });

  it('a writer killed with SIGKILL leaves sendense-A in-use: the next backup is full with the reason, then incrementals work again', async () => {
    const source = await makeVm('kv', [
      { id: 'disk0', format: 'qcow2', size: 64 * MiB },
      { id: 'disk1', format: 'qcow2', size: 64 * MiB },
    ]);
    await source.prepareBackup('kv', { newPointId: 'A', sincePointId: null });
    await source.completeBackup('kv', { newPointId: 'A', sincePointId: null, success: true });

    // A "VM" writes to disk0 and keeps running: prepare refuses (not a silent full, not an incremental).
    const vm = await startQemuIoWriter(path('kv-disk0.qcow2'), [{ offset: 2 * MiB, length: 64 * KiB }]);
    writers.push(vm);
    const running = await source.prepareBackup('kv', { newPointId: 'B', sincePointId: 'A' }).catch((e: unknown) => e);
    expect(running).toBeInstanceOf(VmRunningError);
    expect((running as Error).message).toMatch(/^VM kv appears to be running: disk disk0 \(.*kv-disk0\.qcow2\) is locked/);
    await expect(source.openSnapshot('kv')).rejects.toBeInstanceOf(VmRunningError);
    expect(await bitmapsOf(source, 'kv').catch((e: Error) => e.name)).toBe('VmRunningError');

    // Then it crashes.
    await vm.kill9();
    const reason = 'bitmap sendense-A on disk0 is inconsistent (in-use flag left by a writer that was killed)';
    expect(await source.brokenChainReason('kv', 'A')).toBe(reason);
    expect(await source.checkChain('kv', 'A')).toEqual({ ok: false, reason, broken: true, disks: [{ diskId: 'disk0', ok: false, reason }, { diskId: 'disk1', ok: true }] });
    expect(await bitmapsOf(source, 'kv')).toEqual({ disk0: ['sendense-A (in-use)'], disk1: ['sendense-A'] });

    const b = await source.prepareBackup('kv', { newPointId: 'B', sincePointId: 'A' });
    expect(b).toMatchObject({ mode: 'full', reason, bitmaps: {} });
    expect(b.disks).toEqual([
      { diskId: 'disk0', mode: 'full', newBitmap: 'sendense-B', reason },
      { diskId: 'disk1', mode: 'full', newBitmap: 'sendense-B', reason: `another disk of the VM needs a full backup: ${reason}` },
    ]);
    // qemu-nbd refuses the broken bitmap, but exports the disk fine without it (a full backup needs none).
    await expect(source.openSnapshot('kv', { bitmaps: { disk0: 'sendense-A' } })).rejects.toThrow(/Bitmap 'sendense-A' is inconsistent and cannot be used/);
    expect(await changedRanges(source, 'kv', b)).toEqual({});
    const done = await source.completeBackup('kv', { newPointId: 'B', sincePointId: 'A', success: true });
    expect(done.disks.map((d) => d.removed)).toEqual([['sendense-A'], ['sendense-A']]);
    expect(await bitmapsOf(source, 'kv')).toEqual({ disk0: ['sendense-B'], disk1: ['sendense-B'] });

    const w = [{ offset: 7 * MiB, length: 4 * KiB }];
    await qemuIoWrite(path('kv-disk0.qcow2'), w);
    const c = await source.prepareBackup('kv', { newPointId: 'C', sincePointId: 'B' });
    expect(c.mode).toBe('incremental');
    expect(await changedRanges(source, 'kv', c)).toEqual({ disk0: expectedDirty(w), disk1: [] });
    await source.completeBackup('kv', { newPointId: 'C', sincePointId: 'B', success: true });
  });

  it('a writable qemu-nbd killed with SIGKILL after writing through NBD breaks the chain the same way', async () => {
    const source = await makeVm('nk', [{ id: 'disk0', format: 'qcow2', size: 32 * MiB }]);
    await source.prepareBackup('nk', { newPointId: 'A', sincePointId: null });
    await source.completeBackup('nk', { newPointId: 'A', sincePointId: null, success: true });
    const writer = await startWritableQemuNbd(path('nk-disk0.qcow2'), path('nk.sock'));
    writers.push(writer);
    await nbdWrite(writer.uri, [{ offset: 1 * MiB, length: 64 * KiB }]);
    await writer.kill9();
    const b = await source.prepareBackup('nk', { newPointId: 'B', sincePointId: 'A' });
    expect(b).toMatchObject({ mode: 'full', reason: 'bitmap sendense-A on disk0 is inconsistent (in-use flag left by a writer that was killed)' });
    // The full fails: its own bitmap goes, the broken one stays, so the retry is full again for the same reason.
    const failed = await source.completeBackup('nk', { newPointId: 'B', sincePointId: 'A', success: false });
    expect(failed.disks[0]).toEqual({
      diskId: 'disk0',
      removed: ['sendense-B'],
      warnings: ['bitmap sendense-A on disk0 is inconsistent (in-use flag left by a writer that was killed): nothing to merge sendense-B into; the next backup will be full'],
    });
    expect((await source.prepareBackup('nk', { newPointId: 'B2', sincePointId: 'A' })).mode).toBe('full');
    await source.completeBackup('nk', { newPointId: 'B2', sincePointId: 'A', success: true });
    expect(await bitmapsOf(source, 'nk')).toEqual({ disk0: ['sendense-B2'] });
  });

  it('a failed full backup removes only its own bitmap; a retried prepare keeps the bitmap it already started', async () => {
    const source = await makeVm('ff', [{ id: 'disk0', format: 'qcow2', size: 16 * MiB }]);
    await source.prepareBackup('ff', { newPointId: 'A', sincePointId: null });
    const w = [{ offset: 3 * MiB, length: 4 * KiB }];
    await qemuIoWrite(path('ff-disk0.qcow2'), w);
    // Prepare retried (e.g. the hub resent it): sendense-A is kept, with what it recorded since the first prepare.
    await source.prepareBackup('ff', { newPointId: 'A', sincePointId: null });
    expect(await bitmapsOf(source, 'ff')).toEqual({ disk0: ['sendense-A'] });
    const snapshot = await source.openSnapshot('ff', { bitmaps: { disk0: 'sendense-A' } });
    expect(await dirtyExtents(snapshot.disks[0].uri, 'sendense-A')).toEqual(expectedDirty(w));
    await snapshot.close();
    expect(await source.completeBackup('ff', { newPointId: 'A', sincePointId: null, success: false })).toMatchObject({ disks: [{ removed: ['sendense-A'] }] });
    expect(await bitmapsOf(source, 'ff')).toEqual({ disk0: [] });
    // No point: an incremental since A is impossible and says so.
    expect(await source.prepareBackup('ff', { newPointId: 'B', sincePointId: 'A' })).toMatchObject({ mode: 'full', reason: 'bitmap sendense-A on disk0 is missing' });
  });

  it('completeBackup on a VM that was started again defers (bitmaps untouched, safe), and finishes later', async () => {
    const source = await makeVm('df', [{ id: 'disk0', format: 'qcow2', size: 16 * MiB }]);
    await source.prepareBackup('df', { newPointId: 'A', sincePointId: null });
    await source.completeBackup('df', { newPointId: 'A', sincePointId: null, success: true });
    await source.prepareBackup('df', { newPointId: 'B', sincePointId: 'A' });
    // The VM is started before the failure of B is reported; it writes.
    const vm = await startWritableQemuNbd(path('df-disk0.qcow2'), path('df.sock'));
    writers.push(vm);
    await nbdWrite(vm.uri, [{ offset: 9 * MiB, length: 4 * KiB }]);
    const deferred = await source.completeBackup('df', { newPointId: 'B', sincePointId: 'A', success: false });
    expect(deferred.complete).toBe(false);
    expect(deferred.disks[0].deferred).toMatch(/image is locked by another process \(.*"write" lock\); bitmaps left as they are/);
    await vm.stop(); // clean shutdown (SIGTERM to qemu-nbd): bitmaps stored
    // The straggler sendense-B is harmless: sendense-A kept recording, so C since A still sees the VM's write.
    const c = await source.prepareBackup('df', { newPointId: 'C', sincePointId: 'A' });
    expect(c.mode).toBe('incremental');
    expect(await changedRanges(source, 'df', c)).toEqual({ disk0: expectedDirty([{ offset: 9 * MiB, length: 4 * KiB }]) });
    const done = await source.completeBackup('df', { newPointId: 'C', sincePointId: 'A', success: true });
    expect(done.disks[0].removed).toEqual(['sendense-A', 'sendense-B']);
    expect(await bitmapsOf(source, 'df')).toEqual({ disk0: ['sendense-C'] });
  });

  it('raw disks: full every time with the reason, and nothing to manage', async () => {
    const source = await makeVm('rw', [
      { id: 'disk0', format: 'qcow2', size: 16 * MiB },
      { id: 'disk1', format: 'raw', size: 4 * MiB },
    ]);
    await source.prepareBackup('rw', { newPointId: 'A', sincePointId: null });
    await source.completeBackup('rw', { newPointId: 'A', sincePointId: null, success: true });
    const b = await source.prepareBackup('rw', { newPointId: 'B', sincePointId: 'A' });
    expect(b).toMatchObject({ mode: 'full', reason: 'disk disk1 is raw: it cannot keep persistent dirty bitmaps (full backups only)', bitmaps: {} });
    expect(await source.checkChain('rw', 'A')).toMatchObject({ ok: false, broken: false });
    expect(b.disks[1]).toEqual({ diskId: 'disk1', mode: 'full', reason: 'disk disk1 is raw: it cannot keep persistent dirty bitmaps (full backups only)' });
    expect(await changedRanges(source, 'rw', b)).toEqual({});
    await source.completeBackup('rw', { newPointId: 'B', sincePointId: 'A', success: true });
    expect(await bitmapsOf(source, 'rw')).toEqual({ disk0: ['sendense-B'], disk1: [] });
  });

  it('rejects restore point ids that cannot name a bitmap', async () => {
    const source = await makeVm('ids', [{ id: 'disk0', format: 'qcow2', size: 1 * MiB }]);
    await expect(source.prepareBackup('ids', { newPointId: '../x', sincePointId: null })).rejects.toThrow(/restore point id "..\/x" must match/);
    await expect(source.prepareBackup('ids', { newPointId: 'A', sincePointId: 'A' })).rejects.toThrow(/cannot be its own base/);
    await expect(source.prepareBackup('nope', { newPointId: 'A', sincePointId: null })).rejects.toThrow('VM nope is not in the inventory');
  });
});
