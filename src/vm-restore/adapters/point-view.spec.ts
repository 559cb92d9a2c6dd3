import type { ChainState } from '../../restore-points/chain.aggregate';
import type { RestorePoint } from '../../restore-points/chain.events';
import type { RepositoriesService } from '../../repositories/registry/repositories.service';
import type { RestorePointsService } from '../../restore-points/restore-points.service';
import { PointView } from './point-view';

const point = (restorePointId: string, parentId: string | null): RestorePoint => ({
  restorePointId,
  vmId: 'vm1',
  repositoryId: 'repo',
  backupId: null,
  type: parentId ? 'incremental' : 'full',
  parentId,
  createdAt: '2026-01-01T00:00:00.000Z',
  disks: [],
});

/** full <- inc1 <- inc2, with a delete of `pending` in progress (or none). */
function viewWith(pending: string | null): PointView {
  const chain = {
    points: [point('full', null), point('inc1', 'full'), point('inc2', 'inc1')],
    pending: pending ? { restorePointId: pending, strategy: 'merge-into-child', childId: null, parentId: null } : null,
    integrity: {},
    lastBreak: null,
  } as unknown as ChainState;
  const points = { chain: async () => chain } as unknown as RestorePointsService;
  const repositories = { usable: async () => ({ root: '/repo' }) } as unknown as RepositoriesService;
  return new PointView(points, repositories);
}

describe('what a restore reads of a point', () => {
  it('names a delete in progress of the point or of a point it reads through, and not of one reading through it', async () => {
    expect((await viewWith(null).point('vm1', 'repo', 'inc1'))).toMatchObject({ deleting: null, lineage: [{ restorePointId: 'full' }, { restorePointId: 'inc1' }], root: '/repo' });
    expect((await viewWith('full').point('vm1', 'repo', 'inc1'))!.deleting).toBe('full');
    expect((await viewWith('inc1').point('vm1', 'repo', 'inc1'))!.deleting).toBe('inc1');
    // a delete of inc2 rewrites only what reads through inc1, never inc1's lineage
    expect((await viewWith('inc2').point('vm1', 'repo', 'inc1'))!.deleting).toBeNull();
    expect(await viewWith(null).point('vm1', 'repo', 'gone')).toBeNull();
  });

  describe('once a delete that began before the exports ends', () => {
    type Chain = { points: RestorePoint[]; pending: string | null; corrupt?: string[] };
    /** A view whose chain reads as each of `chains` in turn, then as the last. */
    function viewThrough(...chains: Chain[]): PointView {
      let read = 0;
      const points = {
        chain: async () => {
          const c = chains[Math.min(read++, chains.length - 1)];
          return {
            points: c.points,
            pending: c.pending ? { restorePointId: c.pending, strategy: 'merge-into-child', childId: null, parentId: null } : null,
            integrity: Object.fromEntries((c.corrupt ?? []).map((id) => [id, { status: 'corrupt', verifiedAt: null, damaged: [], problems: ['a delete stopped midway: disk full'] }])),
            lastBreak: null,
          } as unknown as ChainState;
        },
      } as unknown as RestorePointsService;
      return new PointView(points, { usable: async () => ({ root: '/repo' }) } as unknown as RepositoriesService);
    }
    const three = [point('full', null), point('inc1', 'full'), point('inc2', 'inc1')];
    const wait = { timeoutMs: 5_000, pollMs: 1, stop: () => false };

    it('goes on when the delete stepped back (it saw the exports): the point reads as before', async () => {
      const before = (await viewThrough({ points: three, pending: null }).point('vm1', 'repo', 'inc2'))!;
      // before the fix the restore failed here, saying the point was deleted, though the delete stepped back
      expect(await viewThrough({ points: three, pending: 'inc1' }, { points: three, pending: 'inc1' }, { points: three, pending: null }).settled(before, wait)).toEqual({ ok: true });
      expect(await viewThrough({ points: three, pending: 'inc2' }, { points: three, pending: null }).settled(before, wait)).toEqual({ ok: true });
      // a delete of a point above it does not touch its lineage: nothing to wait for
      expect(await viewThrough({ points: three, pending: null }).settled((await viewThrough({ points: three, pending: null }).point('vm1', 'repo', 'inc1'))!, wait)).toEqual({ ok: true });
    });

    it('fails when the delete took the point or a point it reads through, or stopped midway in its lineage', async () => {
      const before = (await viewThrough({ points: three, pending: null }).point('vm1', 'repo', 'inc2'))!;
      const withoutInc2 = three.slice(0, 2);
      expect(await viewThrough({ points: three, pending: 'inc2' }, { points: withoutInc2, pending: null }).settled(before, wait)).toEqual({ ok: false, reason: 'restore point inc2 was deleted while the restore was starting' });
      const merged = [point('full', null), point('inc2', 'full')];
      expect(await viewThrough({ points: three, pending: 'inc1' }, { points: merged, pending: null }).settled(before, wait)).toEqual({ ok: false, reason: 'a restore point that restore point inc2 reads through was deleted while the restore was starting' });
      expect(await viewThrough({ points: three, pending: 'inc1' }, { points: three, pending: null, corrupt: ['inc1'] }).settled(before, wait)).toEqual({
        ok: false,
        reason: "restore point inc1 of the point's chain was marked corrupt while the restore was starting",
      });
    });

    it('a point already corrupt when the restore was accepted (a forced restore) is not a new finding', async () => {
      const before = (await viewThrough({ points: three, pending: null, corrupt: ['full'] }).point('vm1', 'repo', 'inc2'))!;
      expect(before.corrupt).toEqual(['full']);
      expect(await viewThrough({ points: three, pending: null, corrupt: ['full'] }).settled(before, wait)).toEqual({ ok: true });
    });

    it('gives up after its wait, or when the hub stops, naming the delete', async () => {
      const before = (await viewThrough({ points: three, pending: null }).point('vm1', 'repo', 'inc2'))!;
      const busy = { points: three, pending: 'full' };
      expect(await viewThrough(busy).settled(before, { ...wait, timeoutMs: 20 })).toEqual({ ok: false, reason: "restore point full of the point's chain is still being deleted" });
      expect(await viewThrough(busy).settled(before, { ...wait, stop: () => true })).toEqual({ ok: false, reason: "restore point full of the point's chain is still being deleted" });
    });
  });
});
