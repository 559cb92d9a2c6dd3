import { fold } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { restoreMountAggregate as mount, RestoreMountCommand } from './restore-mount.aggregate';
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
const volumes: MountVolume[] = [
  { id: 'p1', fsType: 'ext4', size: 1024, label: 'root', status: 'mounted', reason: null, start: 1048576, partitionType: null, partitionName: null, uuid: null },
  { id: 'p2', fsType: 'LVM2_member', size: 1024, label: null, status: 'unsupported', reason: 'device-mapper is not available on this host', start: 2097152, partitionType: null, partitionName: null, uuid: null },
];
const ready: RestoreMountCommand = { kind: 'recordReady', partitionTable: 'gpt', diskSize: 4096, volumes };
const download: RestoreMountCommand = { kind: 'recordFileDownload', volume: 'p1', path: 'etc/hostname', bytes: 7, range: null, complete: true, actor: 'alice' };

function apply(commands: RestoreMountCommand[]): RestoreMountEvent[] {
  const events: RestoreMountEvent[] = [];
  for (const c of commands) events.push(...mount.decide(c, fold(mount, events)));
  return events;
}

describe('restore mount rules', () => {
  it('records request, ready, downloads and release in order', () => {
    const events = apply([
      { kind: 'request', target },
      ready,
      { kind: 'recordAccess', volume: 'p1', path: 'etc' },
      download,
      { kind: 'recordArchiveDownload', volume: 'p1', path: 'etc', format: 'zip', bytes: 900, complete: true, actor: 'alice' },
      { kind: 'release', reason: 'requested' },
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
    expect(events[3].data).toEqual({ mountId: 'M', volume: 'p1', path: 'etc/hostname', bytes: 7, range: null, complete: true, actor: 'alice' });
    expect(events[5].data).toEqual({ mountId: 'M', reason: 'requested', detail: null });
    expect(fold(mount, events)).toMatchObject({ status: 'released', releaseReason: 'requested', wasReady: true });
  });

  it('refuses a second request for one mount id', () => {
    expect(() => apply([{ kind: 'request', target }, { kind: 'request', target }])).toThrow(/already exists/);
  });

  it('a release is idempotent, and a ready or failure arriving after it changes nothing', () => {
    const released = apply([{ kind: 'request', target }, { kind: 'release', reason: 'hub-restart', detail: 'the hub restarted' }, ready, { kind: 'recordFailed', reason: 'x' }, { kind: 'release', reason: 'requested' }]);
    expect(released.map((e) => e.type)).toEqual(['RestoreMountRequested', 'RestoreMountReleased']);
    expect(released[1].data).toEqual({ mountId: 'M', reason: 'hub-restart', detail: 'the hub restarted' });
  });

  it('a failed mount is never ready, never released, and records no access', () => {
    const events = apply([{ kind: 'request', target }, { kind: 'recordFailed', reason: 'qemu-nbd: Could not open' }, ready, { kind: 'recordAccess', volume: 'p1', path: '' }, download, { kind: 'release', reason: 'requested' }]);
    expect(events.map((e) => e.type)).toEqual(['RestoreMountRequested', 'RestoreMountFailed']);
    expect(fold(mount, events).status).toBe('failed');
  });

  it('records a download that was cut off by the release (the audit shows every byte that left), but no browse after it', () => {
    const events = apply([
      { kind: 'request', target },
      ready,
      { kind: 'release', reason: 'idle-timeout' },
      { ...download, bytes: 3, complete: false } as RestoreMountCommand,
      { kind: 'recordAccess', volume: 'p1', path: '' },
    ]);
    expect(events.map((e) => e.type)).toEqual(['RestoreMountRequested', 'RestoreMountReady', 'RestoreMountReleased', 'RestoreFileDownloaded']);
    expect(events[3].data).toMatchObject({ bytes: 3, complete: false });
  });

  it('records no download for a mount that never became ready, and no release of an unknown mount', () => {
    expect(apply([{ kind: 'request', target }, download])).toHaveLength(1);
    expect(() => apply([{ kind: 'release', reason: 'requested' }])).toThrow(DomainError);
  });
});
