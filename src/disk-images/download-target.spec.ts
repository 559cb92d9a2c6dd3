import { fold } from '../eventing/aggregate';
import { chainAggregate as chain, ChainCommand } from '../restore-points/chain.aggregate';
import { ChainEvent, RestorePoint } from '../restore-points/chain.events';
import { spaceRefusal } from './adapters/qcow2-image';
import { corruptionRefusal, lineageOf, readTarget } from './download-target';
import { clientHost } from './point-export.workflow';

const point = (id: string, parentId: string | null): RestorePoint => ({
  restorePointId: id,
  vmId: 'vm',
  repositoryId: 'r',
  backupId: null,
  type: parentId ? 'incremental' : 'full',
  parentId,
  createdAt: '2026-01-01T00:00:00Z',
  disks: ['disk0', 'disk1'].map((diskId) => ({ diskId, file: `vm/${diskId}/${id}.qcow2`, parentFile: parentId && `vm/${diskId}/${parentId}.qcow2`, virtualSize: 1, fileBytes: 1, changeRef: null })),
});

function state(commands: ChainCommand[]) {
  const events: ChainEvent[] = [];
  for (const c of commands) events.push(...chain.decide(c, fold(chain, events)));
  return fold(chain, events);
}

const abc: ChainCommand[] = [{ kind: 'add', point: point('a', null) }, { kind: 'add', point: point('b', 'a') }, { kind: 'add', point: point('c', 'b') }];

describe('what a disk image of a point reads', () => {
  it('reads the point through its lineage, oldest first', () => {
    expect(lineageOf(state(abc), 'b').map((p) => p.restorePointId)).toEqual(['a', 'b']);
    expect(readTarget(state(abc), 'c', 'disk1')).toMatchObject({ disk: { file: 'vm/disk1/c.qcow2' }, lineage: [{ restorePointId: 'a' }, { restorePointId: 'b' }, { restorePointId: 'c' }] });
  });

  it('is not found for an unknown point or disk (naming the disks it has)', () => {
    expect(() => readTarget(state(abc), 'x', 'disk0')).toThrow(/restore point x does not exist/);
    expect(() => readTarget(state(abc), 'b', 'disk9')).toThrow(/has no disk disk9; its disks are disk0, disk1/);
  });

  it('refuses while a delete rewrites the point or one it reads through, not one above it', () => {
    const deletingA = state([...abc, { kind: 'startDelete', restorePointId: 'a' }]);
    expect(() => readTarget(deletingA, 'b', 'disk0')).toThrow(/restore point a is being deleted/);
    const deletingC = state([...abc, { kind: 'startDelete', restorePointId: 'c' }]);
    expect(readTarget(deletingC, 'b', 'disk0').disk.diskId).toBe('disk0');
  });

  it('refuses a corrupt point naming every damaged block and problem, unless forced', () => {
    const damaged = state([...abc, { kind: 'recordCorruption', restorePointId: 'a', diskId: 'disk0', offset: 65536, length: 65536, expected: 'aa', actual: 'bb', readsThrough: ['b'] }]);
    expect(corruptionRefusal(damaged, 'b', false)).toBe('restore point b is corrupt: disk0 offset 65536 length 65536 (in restore point a: expected aa, read bb). Add force=true to download it anyway');
    expect(corruptionRefusal(damaged, 'b', true)).toBeNull();
    expect(corruptionRefusal(damaged, 'c', false)).toBeNull();
    const structural = state([...abc, { kind: 'recordVerification', restorePointId: 'c', ok: false, problems: ['disk0: qemu-img check: 2 leaked clusters'], warnings: [], verifiedAt: '2026-01-02T00:00:00Z', digests: 'all' }]);
    expect(corruptionRefusal(structural, 'c', false)).toMatch(/corrupt: disk0: qemu-img check: 2 leaked clusters/);
  });

  it('says how much space a qcow2 needs and has, and points to raw', () => {
    expect(spaceRefusal(100, 100, '/d')).toBeNull();
    expect(spaceRefusal(3 * 1024 ** 3, 1024 ** 3, '/var/disk-images')).toBe(
      'not enough space to build the qcow2 image in /var/disk-images: it needs 3.00 GiB (qemu-img measure), 1.00 GiB are free; download it as raw (format=raw), which needs no space on the hub',
    );
  });

  it('tells an export client the NBD bind address, or the host it reached the API by when the bind is a wildcard', () => {
    expect(clientHost('10.1.2.3', 'hub.example')).toBe('10.1.2.3');
    expect(clientHost('0.0.0.0', 'hub.example')).toBe('hub.example');
    expect(clientHost('::', '[fd00::1]')).toBe('fd00::1');
  });
});
