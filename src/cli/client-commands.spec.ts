import { formatRestorePoint, freeSpace, ListedRestorePoint } from './client-commands';

describe('formatRestorePoint', () => {
  const point: ListedRestorePoint = { restorePointId: 'rp1', type: 'incremental', parentId: 'rp0', disks: [{ diskId: 'vda', fileBytes: 1024 }, { diskId: 'vdb', fileBytes: 1024 }], createdAt: '2026-11-22T10:00:00.000Z' };

  it('says a point was taken with the guest frozen, and for how long', () => {
    expect(formatRestorePoint({ ...point, consistency: 'application', consistencyReason: null, freezeMs: 170 })).toMatch(/^rp1 {2}incremental parent=rp0 {2}disks=vda,vdb {2}.+ {2}2026-11-22T10:00:00.000Z {2}application-consistent \(guest frozen 170 ms\)$/);
  });

  it('says a point is only crash-consistent, and why', () => {
    expect(formatRestorePoint({ ...point, consistency: 'crash', consistencyReason: 'the domain has no guest agent channel', freezeMs: null })).toMatch(/ {2}crash-consistent: the domain has no guest agent channel$/);
  });

  it('says a point is corrupt, or being deleted, before anything else of it', () => {
    expect(formatRestorePoint({ ...point, integrity: 'corrupt', consistency: 'crash', consistencyReason: 'x' })).toMatch(/2026-11-22T10:00:00.000Z {2}CORRUPT \(a restore needs --force\) {2}crash-consistent: x$/);
    expect(formatRestorePoint({ ...point, status: 'deleting' })).toMatch(/ {2}BEING DELETED$/);
    expect(formatRestorePoint({ ...point, integrity: 'verified', status: 'available' })).toMatch(/2026-11-22T10:00:00.000Z$/);
  });

  it('free space not measured reads as unknown, not as a full disk', () => {
    expect(freeSpace(null)).toBe('free space unknown');
    expect(freeSpace(0)).toBe('0 B free');
  });

  it('says nothing about consistency for a point whose source did not record it', () => {
    expect(formatRestorePoint({ ...point, consistency: null })).toMatch(/2026-11-22T10:00:00.000Z$/);
  });
});
