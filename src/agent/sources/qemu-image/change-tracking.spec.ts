import { checkChain, decideBackup, newBitmapAction, planCompletion, type DiskBitmapState } from './change-tracking';
import { isLockMessage, qemuSummary } from './errors';
import type { BitmapInfo } from '../../../qemu/qemu-img';

const P = 'sendense-';
function bm(name: string, flags: string[] = ['auto']): BitmapInfo {
  return { name, granularity: 65536, flags, enabled: flags.includes('auto'), inUse: flags.includes('in-use') };
}
function qcow2(diskId: string, ...bitmaps: BitmapInfo[]): DiskBitmapState {
  return { diskId, format: 'qcow2', bitmaps };
}
const raw = (diskId: string): DiskBitmapState => ({ diskId, format: 'raw', bitmaps: [] });

describe('decideBackup', () => {
  it('is incremental when every disk has a consistent, enabled base bitmap', () => {
    const d = decideBackup([qcow2('disk0', bm('sendense-A')), qcow2('disk1', bm('sendense-A'), bm('other'))], { newPointId: 'B', sincePointId: 'A' }, P);
    expect(d).toEqual({
      mode: 'incremental',
      disks: [
        { diskId: 'disk0', mode: 'incremental', bitmap: 'sendense-A', newBitmap: 'sendense-B' },
        { diskId: 'disk1', mode: 'incremental', bitmap: 'sendense-A', newBitmap: 'sendense-B' },
      ],
    });
  });

  it('is full for every disk when one disk lacks its base, with each reason', () => {
    const d = decideBackup([qcow2('disk0', bm('sendense-A')), qcow2('disk1')], { newPointId: 'B', sincePointId: 'A' }, P);
    expect(d.mode).toBe('full');
    expect(d.reason).toBe('bitmap sendense-A on disk1 is missing');
    expect(checkChain([qcow2('disk0', bm('sendense-A')), qcow2('disk1')], 'A', P).broken).toBe(true);
    expect(d.disks).toEqual([
      { diskId: 'disk0', mode: 'full', newBitmap: 'sendense-B', reason: 'another disk of the VM needs a full backup: bitmap sendense-A on disk1 is missing' },
      { diskId: 'disk1', mode: 'full', newBitmap: 'sendense-B', reason: 'bitmap sendense-A on disk1 is missing' },
    ]);
  });

  it('never uses an in-use (inconsistent) or disabled base', () => {
    expect(decideBackup([qcow2('disk0', bm('sendense-A', ['in-use', 'auto']))], { newPointId: 'B', sincePointId: 'A' }, P).reason).toBe(
      'bitmap sendense-A on disk0 is inconsistent (in-use flag left by a writer that was killed)',
    );
    expect(decideBackup([qcow2('disk0', bm('sendense-A', []))], { newPointId: 'B', sincePointId: 'A' }, P).reason).toBe(
      'bitmap sendense-A on disk0 is disabled (it has not been recording writes)',
    );
  });

  it('is full without a previous point, and always for a VM with a raw disk (not a broken chain)', () => {
    const first = decideBackup([qcow2('disk0')], { newPointId: 'A', sincePointId: null }, P);
    expect(first).toEqual({ mode: 'full', reason: 'no previous restore point to continue from', disks: [{ diskId: 'disk0', mode: 'full', newBitmap: 'sendense-A', reason: 'no previous restore point to continue from' }] });
    const mixed = decideBackup([qcow2('disk0', bm('sendense-A')), raw('disk1')], { newPointId: 'B', sincePointId: 'A' }, P);
    expect(mixed.mode).toBe('full');
    expect(checkChain([qcow2('disk0', bm('sendense-A')), raw('disk1')], 'A', P).broken).toBe(false);
    expect(mixed.disks[1]).toEqual({ diskId: 'disk1', mode: 'full', reason: 'disk disk1 is raw: it cannot keep persistent dirty bitmaps (full backups only)' });
  });
});

describe('checkChain', () => {
  it('reports per disk', () => {
    expect(checkChain([qcow2('a', bm('sendense-P')), qcow2('b', bm('sendense-P', ['in-use']))], 'P', P)).toEqual({
      ok: false,
      reason: 'bitmap sendense-P on b is inconsistent (in-use flag left by a writer that was killed)',
      broken: true,
      disks: [
        { diskId: 'a', ok: true },
        { diskId: 'b', ok: false, reason: 'bitmap sendense-P on b is inconsistent (in-use flag left by a writer that was killed)' },
      ],
    });
  });
});

describe('checkChain: broken or merely raw', () => {
  it('a raw disk alone does not break the chain; a qcow2 disk that lost its bitmap does, beside a raw disk too', () => {
    expect(checkChain([qcow2('a', bm('sendense-P')), raw('b')], 'P', P)).toMatchObject({ ok: false, broken: false });
    expect(checkChain([qcow2('a'), raw('b')], 'P', P)).toMatchObject({ ok: false, broken: true, reason: expect.stringContaining('bitmap sendense-P on a is missing') });
    expect(decideBackup([qcow2('a'), raw('b')], { newPointId: 'B', sincePointId: 'P' }, P).mode).toBe('full');
  });
});

describe('newBitmapAction', () => {
  it('adds, keeps a consistent one from a retried prepare, replaces a broken one', () => {
    expect(newBitmapAction(qcow2('d'), 'B', P)).toBe('add');
    expect(newBitmapAction(qcow2('d', bm('sendense-B')), 'B', P)).toBe('keep');
    expect(newBitmapAction(qcow2('d', bm('sendense-B', ['in-use', 'auto'])), 'B', P)).toBe('replace');
    expect(newBitmapAction(raw('d'), 'B', P)).toBe('none');
  });
});

describe('planCompletion', () => {
  it('on success keeps only the new bitmap (old base, stragglers and broken ones go; foreign ones stay)', () => {
    const disk = qcow2('d', bm('sendense-A'), bm('sendense-X'), bm('sendense-Y', ['in-use']), bm('sendense-C'), bm('libvirt-bitmap'));
    expect(planCompletion(disk, { newPointId: 'C', sincePointId: 'A', success: true }, P)).toEqual({ remove: ['sendense-A', 'sendense-X', 'sendense-Y'], warnings: [] });
  });

  it('on success warns when the new bitmap is gone or broken (next backup full)', () => {
    expect(planCompletion(qcow2('d', bm('sendense-A')), { newPointId: 'C', sincePointId: 'A', success: true }, P).warnings).toEqual([
      'bitmap sendense-C on d is missing: the next backup will be full',
    ]);
  });

  it('on failure merges the new bitmap into the base, then removes it', () => {
    expect(planCompletion(qcow2('d', bm('sendense-A'), bm('sendense-B')), { newPointId: 'B', sincePointId: 'A', success: false }, P)).toEqual({
      merge: { from: 'sendense-B', into: 'sendense-A' },
      remove: ['sendense-B'],
      warnings: [],
    });
  });

  it('on a failed full just removes the new bitmap; twice is a no-op', () => {
    expect(planCompletion(qcow2('d', bm('sendense-A')), { newPointId: 'A', sincePointId: null, success: false }, P)).toEqual({ remove: ['sendense-A'], warnings: [] });
    expect(planCompletion(qcow2('d'), { newPointId: 'A', sincePointId: null, success: false }, P)).toEqual({ remove: [], warnings: [] });
  });

  it('on failure with a missing or broken base drops the new bitmap and says the next backup is full', () => {
    const plan = planCompletion(qcow2('d', bm('sendense-A', ['in-use', 'auto']), bm('sendense-B')), { newPointId: 'B', sincePointId: 'A', success: false }, P);
    expect(plan.merge).toBeUndefined();
    expect(plan.remove).toEqual(['sendense-B']);
    expect(plan.warnings[0]).toMatch(/inconsistent .*nothing to merge sendense-B into; the next backup will be full/);
  });

  it('does nothing on raw disks', () => {
    expect(planCompletion(raw('d'), { newPointId: 'B', sincePointId: 'A', success: true }, P)).toEqual({ remove: [], warnings: [] });
  });
});

describe('qemu messages', () => {
  it('recognises 7.2 lock failures', () => {
    const nbd = `qemu-nbd: Failed to blk_new_open '/x/a.qcow2': Failed to get shared "write" lock\nIs another process using the image [/x/a.qcow2]?\n`;
    expect(isLockMessage(nbd)).toBe(true);
    expect(qemuSummary(nbd)).toBe(`Failed to blk_new_open '/x/a.qcow2': Failed to get shared "write" lock`);
    expect(isLockMessage(`qemu-img: Could not open 'a.qcow2': Failed to get "write" lock`)).toBe(true);
    expect(isLockMessage(`qemu-nbd: Bitmap 'sendense-A' is inconsistent and cannot be used`)).toBe(false);
    expect(qemuSummary(`qemu-nbd: Bitmap 'nope' is not found\n`)).toBe(`Bitmap 'nope' is not found`);
  });
});
