import type { RepositoryDefinition } from '../repositories/registry/repository.events';
import type { ChainState } from './chain.aggregate';
import type { RestorePoint } from './chain.events';
import { isImmutabilityRefusal, refuseWhileImmutable } from './immutability';

const point = (restorePointId: string, parentId: string | null, createdAt: string): RestorePoint =>
  ({ restorePointId, vmId: 'vm1', repositoryId: 'r', backupId: null, type: parentId ? 'incremental' : 'full', parentId, createdAt, disks: [] }) as RestorePoint;
const chain = { points: [point('a', null, '2024-06-01T00:00:00.000Z'), point('b', 'a', '2024-06-03T00:00:00.000Z')], pending: null, integrity: {}, lastBreak: null } as ChainState;
const repository = (immutableDays: number | null | undefined) => ({ repositoryId: 'r', name: 'locked', kind: 'local', root: '/r', nfs: null, cifs: null, immutableDays }) as RepositoryDefinition;
const refusal = (days: number | null | undefined, id: string, now: string) => {
  try {
    refuseWhileImmutable(repository(days), chain, id, new Date(now));
    return null;
  } catch (e) {
    return (e as Error).message;
  }
};

describe('the lock of an immutable repository', () => {
  it('refuses a point until its own lock expired, naming the date', () => {
    expect(refusal(1, 'b', '2024-06-03T23:59:59.000Z')).toBe('restore point b is immutable until 2024-06-04T00:00:00.000Z: repository locked keeps its restore points immutable for 1 day(s) after they were written');
    expect(refusal(1, 'b', '2024-06-04T00:00:00.000Z')).toBeNull();
  });

  it('refuses a point whose own lock expired while the child its delete rewrites is still locked', () => {
    expect(refusal(1, 'a', '2024-06-02T12:00:00.000Z')).toBe(
      'restore point a is immutable until 2024-06-04T00:00:00.000Z: deleting it rewrites restore point b, and repository locked keeps its restore points immutable for 1 day(s) after they were written',
    );
    expect(refusal(1, 'a', '2024-06-04T00:00:01.000Z')).toBeNull();
  });

  it('does not apply to a repository without immutableDays (or registered before it existed), nor to a point not in the chain', () => {
    expect(refusal(null, 'b', '2024-06-03T00:00:01.000Z')).toBeNull();
    expect(refusal(undefined, 'b', '2024-06-03T00:00:01.000Z')).toBeNull();
    expect(refusal(1, 'gone', '2024-06-03T00:00:01.000Z')).toBeNull();
  });

  it('tells retention which deferrals wait for a date rather than for a reader', () => {
    expect(isImmutabilityRefusal(refusal(1, 'a', '2024-06-02T12:00:00.000Z')!)).toBe(true);
    expect(isImmutabilityRefusal('restore point a or a point above it is in use: a verify is reading it')).toBe(false);
  });

  it("measures a synced point's lock from when this hub sealed it (lockedFrom), not from the remote's createdAt", () => {
    // a remote that says 2099 does not lock the copy here until 2099, and one that says 2001 does not leave it unlocked
    const synced = (createdAt: string) => ({ points: [{ ...point('s', null, createdAt), lockedFrom: '2024-06-01T00:00:00.000Z' }], pending: null, integrity: {}, lastBreak: null }) as ChainState;
    const at = (createdAt: string, now: string) => {
      try {
        refuseWhileImmutable(repository(1), synced(createdAt), 's', new Date(now));
        return null;
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(at('2099-01-01T00:00:00.000Z', '2024-06-02T00:00:00.000Z')).toBeNull();
    expect(at('2001-01-01T00:00:00.000Z', '2024-06-01T12:00:00.000Z')).toMatch(/^restore point s is immutable until 2024-06-02T00:00:00.000Z/);
  });
});
