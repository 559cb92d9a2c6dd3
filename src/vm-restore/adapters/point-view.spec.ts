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
  const repositories = { definition: async () => ({ root: '/repo' }) } as unknown as RepositoriesService;
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
});
