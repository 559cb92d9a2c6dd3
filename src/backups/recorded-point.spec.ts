import type { ChainState } from '../restore-points/chain.aggregate';
import type { RestorePoint } from '../restore-points/chain.events';
import { pointRecorded } from './recorded-point';

describe('a failed backup job whose point is recorded is completed, never cleaned away', () => {
  const point = { restorePointId: 'rp-2', vmId: 'vm-1', repositoryId: 'repo-1', backupId: 'job-2', type: 'incremental', parentId: 'rp-1', createdAt: '2026-11-29T00:00:00Z', disks: [] } as RestorePoint;
  const chain = (points: RestorePoint[]): ChainState => ({ points, pending: null, integrity: {}, lastBreak: null, recycled: {} });
  const done = { vda: { done: true }, vdb: { done: true } } as never;

  it('recorded: its point is in the chain and every disk was transferred', () => {
    expect(pointRecorded({ restorePointId: 'rp-2', disks: done }, chain([{ ...point, restorePointId: 'rp-1', parentId: null }, point]))).toBe(true);
  });

  it('not recorded: no point yet, a point the chain does not hold (its files are the job\'s to remove), or a disk not transferred', () => {
    expect(pointRecorded({ restorePointId: null, disks: done }, chain([point]))).toBe(false);
    expect(pointRecorded({ restorePointId: 'rp-2', disks: done }, chain([{ ...point, restorePointId: 'rp-1' }]))).toBe(false);
    expect(pointRecorded({ restorePointId: 'rp-2', disks: { vda: { done: true }, vdb: { done: false } } as never }, chain([point]))).toBe(false);
  });
});
