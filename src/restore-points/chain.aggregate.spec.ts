import { fold } from '../eventing/aggregate';
import { chainAggregate as chain, ChainCommand, integrityOf, pointAndDescendants } from './chain.aggregate';
import { ChainEvent, PointDisk, RestorePoint } from './chain.events';

const disk = (rp: string, parent: string | null): PointDisk => ({ diskId: 'disk0', file: `vm/disk0/${rp}.qcow2`, parentFile: parent && `vm/disk0/${parent}.qcow2`, virtualSize: 1, fileBytes: 1, changeRef: null });
const point = (id: string, parentId: string | null): RestorePoint => ({
  restorePointId: id,
  vmId: 'vm',
  repositoryId: 'r',
  backupId: null,
  type: parentId ? 'incremental' : 'full',
  parentId,
  createdAt: '2026-01-01T00:00:00Z',
  disks: [disk(id, parentId)],
});

function run(commands: ChainCommand[], events: ChainEvent[] = []): ChainEvent[] {
  for (const c of commands) events.push(...chain.decide(c, fold(chain, events)));
  return events;
}

const base = () => run([{ kind: 'add', point: point('a', null) }, { kind: 'add', point: point('b', 'a') }, { kind: 'add', point: point('c', 'b') }]);

describe('restore point chain rules', () => {
  it('accepts a full and incrementals on the newest point only', () => {
    expect(fold(chain, base()).points.map((p) => p.restorePointId)).toEqual(['a', 'b', 'c']);
    expect(() => run([{ kind: 'add', point: point('d', 'a') }], base())).toThrow(/must build on the newest point c/);
    expect(() => run([{ kind: 'add', point: point('a', null) }], base())).toThrow(/already in the chain/);
    expect(() => run([{ kind: 'add', point: { ...point('x', null), parentId: 'a' } }], base())).toThrow(/full restore point has no parent/);
  });

  it('recycles a point once, keeps it in the chain with its files, and lets an admin take it back', () => {
    const recycle: ChainCommand = { kind: 'recycle', restorePointId: 'b', recycledAt: '2026-01-02T00:00:00Z', purgeAfter: '2026-01-09T00:00:00Z', by: 'ops', reason: 'deleted' };
    const events = run([recycle, recycle], base());
    expect(events.slice(3)).toEqual([{ type: 'RestorePointRecycled', data: { restorePointId: 'b', recycledAt: '2026-01-02T00:00:00Z', purgeAfter: '2026-01-09T00:00:00Z', by: 'ops', reason: 'deleted' } }]);
    const state = fold(chain, events);
    expect(state.points.map((p) => p.restorePointId)).toEqual(['a', 'b', 'c']);
    expect(state.recycled).toEqual({ b: { recycledAt: '2026-01-02T00:00:00Z', purgeAfter: '2026-01-09T00:00:00Z' } });
    const back = run([{ kind: 'undelete', restorePointId: 'b', by: 'admin' }], events);
    expect(back.at(-1)).toEqual({ type: 'RestorePointUndeleted', data: { restorePointId: 'b', by: 'admin' } });
    expect(fold(chain, back).recycled).toEqual({});
    expect(() => run([{ kind: 'undelete', restorePointId: 'b', by: 'admin' }], back)).toThrow('restore point b is not in the recycle bin');
    expect(() => run([{ ...recycle, restorePointId: 'zz' }], base())).toThrow('restore point zz does not exist');
  });

  it('purges a recycled point as a delete, which empties its place in the recycle bin', () => {
    const recycled = run([{ kind: 'recycle', restorePointId: 'c', recycledAt: 'x', purgeAfter: 'y', by: 'ops', reason: 'r' }], base());
    const purged = fold(chain, run([{ kind: 'startDelete', restorePointId: 'c' }, { kind: 'completeDelete', restorePointId: 'c', childDisks: null }], [...recycled]));
    expect(purged.points.map((p) => p.restorePointId)).toEqual(['a', 'b']);
    expect(purged.recycled).toEqual({});
    const started = run([{ kind: 'startDelete', restorePointId: 'c' }], [...recycled]);
    expect(() => run([{ kind: 'undelete', restorePointId: 'c', by: 'admin' }], started)).toThrow('restore point c is being purged');
  });

  it("a purge round's start takes a point only while it is in the recycle bin with its grace ended: one undeleted after the round listed it stays", () => {
    const recycled = run([{ kind: 'recycle', restorePointId: 'c', recycledAt: '2026-11-01T00:00:00.000Z', purgeAfter: '2026-11-08T00:00:00.000Z', by: 'ops', reason: 'r' }], base());
    expect(run([{ kind: 'startDelete', restorePointId: 'c', dueBy: '2026-11-08T00:00:00.000Z' }], [...recycled]).at(-1)!.type).toBe('RestorePointDeleteStarted');
    expect(() => run([{ kind: 'startDelete', restorePointId: 'c', dueBy: '2026-11-07T23:59:59.000Z' }], [...recycled])).toThrow('restore point c stays in the recycle bin until 2026-11-08T00:00:00.000Z');
    const undeleted = run([{ kind: 'undelete', restorePointId: 'c', by: 'admin' }], [...recycled]);
    expect(() => run([{ kind: 'startDelete', restorePointId: 'c', dueBy: '2026-11-09T00:00:00.000Z' }], undeleted)).toThrow('restore point c is no longer in the recycle bin: it was undeleted');
    // an operator's delete of it (no dueBy) is a delete as any other
    expect(run([{ kind: 'startDelete', restorePointId: 'c' }], undeleted).at(-1)!.type).toBe('RestorePointDeleteStarted');
  });

  it('a delete names the hub process that runs it; another takes it over only from the process it names, once: a second taking over finds it taken', () => {
    const started = run([{ kind: 'startDelete', restorePointId: 'b', hubInstance: 'hub-a' }], base());
    expect(started.at(-1)!.data).toMatchObject({ restorePointId: 'b', hubInstance: 'hub-a' });
    expect(fold(chain, started).pending?.hubInstance).toBe('hub-a');
    const adopted = run([{ kind: 'adoptDelete', restorePointId: 'b', hubInstance: 'hub-b', from: 'hub-a' }], [...started]);
    expect(adopted.at(-1)).toEqual({ type: 'RestorePointDeleteAdopted', data: { restorePointId: 'b', hubInstance: 'hub-b', from: 'hub-a' } });
    expect(fold(chain, adopted).pending).toMatchObject({ restorePointId: 'b', strategy: 'remove-middle', hubInstance: 'hub-b' });
    expect(() => run([{ kind: 'adoptDelete', restorePointId: 'b', hubInstance: 'hub-c', from: 'hub-a' }], adopted)).toThrow('the delete of restore point b is run by hub process hub-b, not hub-a');
    expect(() => run([{ kind: 'adoptDelete', restorePointId: 'c', hubInstance: 'hub-c', from: 'hub-a' }], adopted)).toThrow('restore point c is not being deleted');
    // a start recorded before processes were named is taken over from nobody
    const unnamed = run([{ kind: 'startDelete', restorePointId: 'b' }], base());
    expect(run([{ kind: 'adoptDelete', restorePointId: 'b', hubInstance: 'hub-b', from: null }], [...unnamed]).at(-1)!.type).toBe('RestorePointDeleteAdopted');
    // the end is recorded as ever, whoever finished it
    expect(fold(chain, run([{ kind: 'completeDelete', restorePointId: 'b', childDisks: [disk('c', 'a')] }], adopted)).pending).toBeNull();
  });

  it('picks the delete strategy from the position in the chain', () => {
    const strategyOf = (id: string) => (run([{ kind: 'startDelete', restorePointId: id }], base()).at(-1)!.data as { strategy: string }).strategy;
    expect(strategyOf('a')).toBe('merge-into-child');
    expect(strategyOf('b')).toBe('remove-middle');
    expect(strategyOf('c')).toBe('remove-newest');
  });

  it('after merging the oldest, its child is a full point', () => {
    const merged: PointDisk[] = [{ ...disk('b', null), fileBytes: 42 }];
    const events = run([{ kind: 'startDelete', restorePointId: 'a' }, { kind: 'completeDelete', restorePointId: 'a', childDisks: merged }], base());
    const state = fold(chain, events);
    expect(state.points.map((p) => [p.restorePointId, p.type, p.parentId])).toEqual([['b', 'full', null], ['c', 'incremental', 'b']]);
    expect(state.points[0].disks[0].fileBytes).toBe(42);
    expect(state.pending).toBeNull();
  });

  it('after removing a middle point, its child builds on the parent', () => {
    const childDisks = [{ ...disk('c', 'a') }];
    const events = run([{ kind: 'startDelete', restorePointId: 'b' }, { kind: 'completeDelete', restorePointId: 'b', childDisks }], base());
    expect(fold(chain, events).points.map((p) => [p.restorePointId, p.parentId, p.disks[0].parentFile])).toEqual([['a', null, null], ['c', 'a', 'vm/disk0/a.qcow2']]);
  });

  it('a delete that stops frees the chain: undone, the point is intact; stopped midway, the point is corrupt until deleted again', () => {
    const pending = run([{ kind: 'startDelete', restorePointId: 'b' }], base());
    const undone = run([{ kind: 'failDelete', restorePointId: 'b', reason: 'qemu-img: Permission denied', undone: true }], [...pending]);
    expect(undone.at(-1)).toEqual({ type: 'RestorePointDeleteFailed', data: { restorePointId: 'b', reason: 'qemu-img: Permission denied', undone: true } });
    expect(fold(chain, undone)).toMatchObject({ pending: null, points: fold(chain, base()).points });
    expect(integrityOf(fold(chain, undone), 'b').status).toBe('unverified');
    expect(run([{ kind: 'add', point: point('d', 'c') }], [...undone]).at(-1)!.type).toBe('RestorePointAdded');
    expect(chain.decide({ kind: 'failDelete', restorePointId: 'b', reason: 'again', undone: true }, fold(chain, undone))).toEqual([]);

    const stopped = fold(chain, run([{ kind: 'failDelete', restorePointId: 'b', reason: 'disk full', undone: false }], [...pending]));
    expect(stopped.pending).toBeNull();
    expect(integrityOf(stopped, 'b')).toMatchObject({ status: 'corrupt', problems: ['a delete stopped midway: disk full'] });
    expect(run([{ kind: 'startDelete', restorePointId: 'b' }], run([{ kind: 'failDelete', restorePointId: 'b', reason: 'disk full', undone: false }], [...pending])).at(-1)!.type).toBe('RestorePointDeleteStarted');
  });

  it('refuses new points and other deletes while a delete is pending; completing twice is a no-op', () => {
    const pending = run([{ kind: 'startDelete', restorePointId: 'c' }], base());
    expect(() => run([{ kind: 'add', point: point('d', 'c') }], [...pending])).toThrow(/busy deleting restore point c/);
    expect(() => run([{ kind: 'startDelete', restorePointId: 'a' }], [...pending])).toThrow(/busy/);
    const done = run([{ kind: 'completeDelete', restorePointId: 'c', childDisks: null }], [...pending]);
    expect(chain.decide({ kind: 'completeDelete', restorePointId: 'c', childDisks: null }, fold(chain, done))).toEqual([]);
  });

  it('a failed verification also marks the chain broken', () => {
    const events = run([{ kind: 'recordVerification', restorePointId: 'b', ok: false, problems: ['truncated'], warnings: [], verifiedAt: '2026-02-02T00:00:00Z', digests: 'all' }], base());
    expect(events.slice(-2).map((e) => e.type)).toEqual(['RestorePointVerified', 'ChainBroken']);
  });

  it('lists a point and everything above it', () => {
    expect(pointAndDescendants(fold(chain, base()), 'b').map((p) => p.restorePointId)).toEqual(['b', 'c']);
  });

  it('a rescan adds a point it does not know, skips one it knows, and marks the chain broken when files or the parent are missing', () => {
    const found = (p: RestorePoint, missingFiles: string[] = []): ChainCommand => ({ kind: 'recordRescanFinding', point: p, missingFiles });
    expect(run([found(point('d', 'c'))], base()).at(-1)).toMatchObject({ type: 'RestorePointAdded', data: { restorePointId: 'd', parentId: 'c' } });
    expect(run([found(point('b', 'a'))], base())).toHaveLength(3);
    expect(run([found(point('d', 'c'), ['vm/disk0/d.qcow2'])], base()).at(-1)).toEqual({ type: 'ChainBroken', data: { restorePointId: 'd', reason: 'files missing: vm/disk0/d.qcow2' } });
    expect(run([found(point('e', 'x'))], base()).at(-1)).toEqual({ type: 'ChainBroken', data: { restorePointId: 'e', reason: 'parent x is not in the chain' } });
    expect(() => run([found(point('d', 'a'))], base())).toThrow(/must build on the newest point c/);
  });

  describe('integrity', () => {
    const verified = (restorePointId: string, ok = true): ChainEvent => ({ type: 'RestorePointVerified', data: { restorePointId, ok, problems: ok ? [] : ['qemu-img check: leaked clusters'], warnings: [], verifiedAt: '2026-02-02T00:00:00Z' } });
    const corrupted = (restorePointId: string, readsThrough: string[]): ChainEvent => ({
      type: 'RestorePointCorrupted',
      data: { restorePointId, diskId: 'disk0', offset: 65536, length: 65536, expected: 'aa', actual: 'bb', readsThrough },
    });

    it('starts unverified and becomes verified with the time of the verify', () => {
      const state = fold(chain, [...base(), verified('b')]);
      expect(integrityOf(state, 'a')).toEqual({ status: 'unverified', verifiedAt: null, damaged: [], problems: [] });
      expect(integrityOf(state, 'b')).toMatchObject({ status: 'verified', verifiedAt: '2026-02-02T00:00:00Z' });
    });

    it('marks the damaged point and every point reading through the block as corrupt, for good', () => {
      const state = fold(chain, [...base(), corrupted('a', ['b']), verified('a'), verified('c')]);
      expect(integrityOf(state, 'a')).toMatchObject({ status: 'corrupt', damaged: [{ diskId: 'disk0', offset: 65536, length: 65536, expected: 'aa', actual: 'bb', inPointId: 'a' }] });
      expect(integrityOf(state, 'b')).toMatchObject({ status: 'corrupt', damaged: [{ inPointId: 'a' }] });
      expect(integrityOf(state, 'c').status).toBe('verified');
    });

    it('records a damaged block once, against the point holding it, naming only points of the chain that read through it', () => {
      const damage = { diskId: 'disk0', offset: 131072, length: 65536, expected: 'aa', actual: 'bb' };
      const events = run([{ kind: 'recordCorruption', restorePointId: 'a', ...damage, readsThrough: ['b', 'gone', 'a'] }], base());
      expect(events.at(-1)).toEqual({ type: 'RestorePointCorrupted', data: { restorePointId: 'a', ...damage, readsThrough: ['b'] } });
      expect(chain.decide({ kind: 'recordCorruption', restorePointId: 'a', ...damage, readsThrough: ['b'] }, fold(chain, events))).toEqual([]);
      expect(() => chain.decide({ kind: 'recordCorruption', restorePointId: 'zz', ...damage, readsThrough: [] }, fold(chain, events))).toThrow(/does not exist/);
      const state = fold(chain, events);
      expect([integrityOf(state, 'a').status, integrityOf(state, 'b').status, integrityOf(state, 'c').status]).toEqual(['corrupt', 'corrupt', 'unverified']);
    });

    it('is verified only by a verify that compared content with digests; a structural-only verify keeps it unverified', () => {
      const verify = (restorePointId: string, digests: 'all' | 'partial' | 'none'): ChainCommand => ({ kind: 'recordVerification', restorePointId, ok: true, problems: [], warnings: [], verifiedAt: '2026-03-03T00:00:00Z', digests });
      const state = fold(chain, run([verify('a', 'none'), verify('b', 'partial'), verify('c', 'all')], base()));
      expect(integrityOf(state, 'a')).toMatchObject({ status: 'unverified', verifiedAt: '2026-03-03T00:00:00Z' });
      expect(integrityOf(state, 'b').status).toBe('unverified');
      expect(integrityOf(state, 'c')).toMatchObject({ status: 'verified', verifiedAt: '2026-03-03T00:00:00Z' });
    });

    it('a structural failure is corrupt too, and a deleted point leaves no integrity behind', () => {
      const state = fold(chain, [...base(), verified('c', false)]);
      expect(integrityOf(state, 'c')).toMatchObject({ status: 'corrupt', problems: ['qemu-img check: leaked clusters'] });
      const gone = fold(chain, run([{ kind: 'startDelete', restorePointId: 'c' }, { kind: 'completeDelete', restorePointId: 'c', childDisks: null }], [...base(), verified('c', false)]));
      expect(gone.integrity).toEqual({});
    });
  });

  it('records the same break of the chain once, and only at a point it holds', () => {
    const reason = 'restore point c is corrupt';
    const broken = run([{ kind: 'breakAt', restorePointId: 'c', reason }, { kind: 'breakAt', restorePointId: 'c', reason }, { kind: 'breakAt', restorePointId: 'c', reason: 'another reason' }], base());
    expect(broken.slice(3)).toEqual([
      { type: 'ChainBroken', data: { reason, restorePointId: 'c' } },
      { type: 'ChainBroken', data: { reason: 'another reason', restorePointId: 'c' } },
    ]);
    expect(() => run([{ kind: 'breakAt', restorePointId: 'zz', reason: 'x' }], base())).toThrow(/restore point zz does not exist/);
  });
});
