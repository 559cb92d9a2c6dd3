import { fold } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { notBrowsable, PointToMount, restoreMountAggregate as mount, RestoreMountCommand } from './restore-mount.aggregate';
import { MountTarget, MountVolume, RestoreMountEvent } from './restore-mount.events';

const target: MountTarget = {
  mountId: 'M',
  restorePointId: 'rp-2',
  vmId: 'vm1',
  repositoryId: 'R',
  diskId: 'disk0',
  file: '/repo/vm1/disk0/rp-2.qcow2',
  chainFiles: ['/repo/vm1/disk0/rp-2.qcow2', '/repo/vm1/disk0/rp-1.qcow2'],
  hubInstance: 'h',
  idleTimeoutSeconds: 3600,
};
const point: PointToMount = {
  restorePointId: 'rp-2',
  vmId: 'vm1',
  repositoryId: 'R',
  status: 'available',
  disks: [
    {
      diskId: 'disk0',
      chain: [
        { relative: 'vm1/disk0/rp-2.qcow2', real: '/repo/vm1/disk0/rp-2.qcow2' },
        { relative: 'vm1/disk0/rp-1.qcow2', real: '/repo/vm1/disk0/rp-1.qcow2' },
      ],
    },
  ],
};
const twoDisks: PointToMount = { ...point, disks: [...point.disks, { diskId: 'disk1', chain: [{ relative: 'vm1/disk1/rp-2.qcow2', real: '/repo/vm1/disk1/rp-2.qcow2' }] }] };
const request = (overrides: Partial<Extract<RestoreMountCommand, { kind: 'request' }>> = {}): RestoreMountCommand => ({ kind: 'request', mountId: 'M', point, hubInstance: 'h', idleTimeoutSeconds: 3600, ...overrides });
const release = (reason: 'requested' | 'idle-timeout' | 'hub-restart', detail?: string, hubInstance = 'h'): RestoreMountCommand => ({ kind: 'release', mountId: 'M', reason, detail, hubInstance });
const volumes: MountVolume[] = [
  { id: 'p1', fsType: 'ext4', size: 1024, label: 'root', status: 'mounted', reason: null, start: 1048576, partitionType: null, partitionName: null, uuid: null },
  { id: 'p2', fsType: 'LVM2_member', size: 1024, label: null, status: 'unsupported', reason: 'device-mapper is not available on this host', start: 2097152, partitionType: null, partitionName: null, uuid: null },
];
const ready: RestoreMountCommand = { kind: 'recordReady', partitionTable: 'gpt', diskSize: 4096, volumes };
const download: RestoreMountCommand = { kind: 'recordFileDownload', volume: 'p1', path: 'etc/hostname', bytes: 7, range: null, complete: true, actor: 'alice', integrity: 'unverified' };

function apply(commands: RestoreMountCommand[]): RestoreMountEvent[] {
  const events: RestoreMountEvent[] = [];
  for (const c of commands) events.push(...mount.decide(c, fold(mount, events)));
  return events;
}

describe('restore mount rules', () => {
  it('records request, ready, downloads and release in order', () => {
    const events = apply([
      request(),
      ready,
      { kind: 'recordAccess', volume: 'p1', path: 'etc' },
      download,
      { kind: 'recordArchiveDownload', volume: 'p1', path: 'etc', format: 'zip', bytes: 900, complete: true, actor: 'alice', integrity: 'verified' },
      release('requested'),
    ]);
    expect(events.map((e) => e.type)).toEqual([
      'RestoreMountRequested',
      'RestoreMountReady',
      'RestoreMountAccessed',
      'RestoreFileDownloaded',
      'RestoreArchiveDownloaded',
      'RestoreMountReleased',
    ]);
    expect(events[0].data).toEqual(target);
    expect(events[1].data).toEqual({ mountId: 'M', partitionTable: 'gpt', diskSize: 4096, volumes });
    expect(events[3].data).toEqual({ mountId: 'M', volume: 'p1', path: 'etc/hostname', bytes: 7, range: null, complete: true, actor: 'alice', integrity: 'unverified' });
    expect(events[4].data).toEqual({ mountId: 'M', volume: 'p1', path: 'etc', format: 'zip', bytes: 900, complete: true, actor: 'alice', integrity: 'verified' });
    expect(events[5].data).toEqual({ mountId: 'M', reason: 'requested', detail: null });
    expect(fold(mount, events)).toMatchObject({ status: 'released', releaseReason: 'requested', wasReady: true });
  });

  it('records the restore point integrity each download carried: a corrupt point is still served, never silently', () => {
    const events = apply([
      request(),
      ready,
      { ...download, integrity: 'corrupt' },
      { kind: 'recordArchiveDownload', volume: 'p1', path: '', format: 'tar.gz', bytes: 10, complete: true, actor: 'bob', integrity: 'corrupt' },
    ]);
    expect(events.slice(2).map((e) => [e.type, (e.data as { integrity: string }).integrity])).toEqual([
      ['RestoreFileDownloaded', 'corrupt'],
      ['RestoreArchiveDownloaded', 'corrupt'],
    ]);
  });

  it('refuses a second request for one mount id', () => {
    expect(() => apply([request(), request()])).toThrow(/already exists/);
  });

  it('a release is idempotent, and a ready or failure arriving after it changes nothing', () => {
    const released = apply([request(), release('hub-restart', 'the hub restarted'), ready, { kind: 'recordFailed', reason: 'x' }, release('requested')]);
    expect(released.map((e) => e.type)).toEqual(['RestoreMountRequested', 'RestoreMountReleased']);
    expect(released[1].data).toEqual({ mountId: 'M', reason: 'hub-restart', detail: 'the hub restarted' });
  });

  it('a failed mount is never ready, never released, and records no access', () => {
    const events = apply([request(), { kind: 'recordFailed', reason: 'qemu-nbd: Could not open' }, ready, { kind: 'recordAccess', volume: 'p1', path: '' }, download, release('requested')]);
    expect(events.map((e) => e.type)).toEqual(['RestoreMountRequested', 'RestoreMountFailed']);
    expect(fold(mount, events).status).toBe('failed');
  });

  it('records a download that was cut off by the release (the audit shows every byte that left), but no browse after it', () => {
    const events = apply([request(), ready, release('idle-timeout'), { ...download, bytes: 3, complete: false } as RestoreMountCommand, { kind: 'recordAccess', volume: 'p1', path: '' }]);
    expect(events.map((e) => e.type)).toEqual(['RestoreMountRequested', 'RestoreMountReady', 'RestoreMountReleased', 'RestoreFileDownloaded']);
    expect(events[3].data).toMatchObject({ bytes: 3, complete: false });
  });

  it('records no download for a mount that never became ready, and no release of an unknown mount', () => {
    expect(apply([request(), download])).toHaveLength(1);
    expect(() => apply([release('requested')])).toThrow(DomainError);
    expect(() => apply([release('requested')])).toThrow('restore mount M does not exist');
  });
});

describe('choosing what to mount', () => {
  const refusal = (command: RestoreMountCommand) => {
    try {
      apply([command]);
    } catch (error) {
      return { kind: (error as DomainError).kind, message: (error as DomainError).message };
    }
    return null;
  };

  it('given a point with one disk, when no disk is named, then that disk is mounted', () => {
    expect(apply([request()])[0].data).toMatchObject({ diskId: 'disk0', file: '/repo/vm1/disk0/rp-2.qcow2' });
  });

  it('given a point with two disks, when a disk is named, then only its chain is read', () => {
    expect(apply([request({ point: twoDisks, diskId: 'disk1' })])[0].data).toMatchObject({ diskId: 'disk1', file: '/repo/vm1/disk1/rp-2.qcow2', chainFiles: ['/repo/vm1/disk1/rp-2.qcow2'] });
  });

  it('given a point with two disks, when no disk is named, then the caller must choose (400)', () => {
    expect(refusal(request({ point: twoDisks }))).toEqual({ kind: 'invalid', message: 'restore point rp-2 has 2 disks (disk0, disk1): choose one with diskId' });
  });

  it('given a point, when a disk it does not have is named, then 404 lists its disks', () => {
    expect(refusal(request({ point: twoDisks, diskId: 'disk9' }))).toEqual({ kind: 'not_found', message: 'restore point rp-2 has no disk disk9; its disks: disk0, disk1' });
  });

  it('given a point being deleted, when it is asked for, then 409', () => {
    expect(refusal(request({ point: { ...point, status: 'deleting' } }))).toEqual({ kind: 'conflict', message: 'restore point rp-2 is being deleted' });
  });

  it('given a point in the recycle bin, when it is asked for, then it is mounted: its files are there until its purge', () => {
    expect(apply([request({ point: { ...point, status: 'recycled' } })])[0]).toMatchObject({ type: 'RestoreMountRequested', data: { restorePointId: 'rp-2', diskId: 'disk0' } });
  });

  it('given a chain with a file missing from the repository, when the disk is asked for, then 409 names the file', () => {
    const broken: PointToMount = { ...point, disks: [{ diskId: 'disk0', chain: [point.disks[0].chain[0], { relative: 'vm1/disk0/rp-1.qcow2', real: null, problem: 'ENOENT' }] }] };
    expect(refusal(request({ point: broken }))).toEqual({ kind: 'conflict', message: 'restore point rp-2 disk disk0 cannot be mounted: vm1/disk0/rp-1.qcow2 is missing in repository R (ENOENT)' });
  });
});

describe('who may release a mount', () => {
  it('given a mount held by another hub process, when this one releases it, then 409 and nothing is recorded', () => {
    const state = fold(mount, apply([request(), ready]));
    expect(() => mount.decide(release('requested', undefined, 'other-hub'), state)).toThrow('restore mount M is held by another hub process; release it there');
  });

  it('given a released mount of another hub process, when this one releases it, then nothing happens', () => {
    const state = fold(mount, apply([request(), release('requested')]));
    expect(mount.decide(release('requested', undefined, 'other-hub'), state)).toEqual([]);
  });
});

describe('why a mount cannot be browsed here', () => {
  const stateAfter = (commands: RestoreMountCommand[]) => fold(mount, apply(commands));

  it('says what happened to it', () => {
    expect(notBrowsable(stateAfter([]), 'M', 'h', false)).toMatchObject({ kind: 'not_found', message: 'restore mount M does not exist' });
    expect(notBrowsable(stateAfter([request(), { kind: 'recordFailed', reason: 'x' }]), 'M', 'h', false).message).toBe('restore mount M failed; mount the restore point again');
    expect(notBrowsable(stateAfter([request(), ready, release('idle-timeout')]), 'M', 'h', false).message).toBe('restore mount M was released (idle-timeout); mount the restore point again');
    expect(notBrowsable(stateAfter([request(), ready]), 'M', 'other-hub', false).message).toBe('restore mount M is held by another hub process');
    expect(notBrowsable(stateAfter([request()]), 'M', 'h', false).message).toBe('restore mount M is still being mounted');
    expect(notBrowsable(stateAfter([request(), ready]), 'M', 'h', true)).toMatchObject({ kind: 'conflict', message: 'restore mount M is being released' });
  });
});
