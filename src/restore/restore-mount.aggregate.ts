import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import type { Integrity } from '../restore-points/chain.aggregate';
import {
  MountTarget,
  MountVolume,
  ReleaseReason,
  RESTORE_ARCHIVE_DOWNLOADED,
  RESTORE_FILE_DOWNLOADED,
  RESTORE_MOUNT_ACCESSED,
  RESTORE_MOUNT_FAILED,
  RESTORE_MOUNT_READY,
  RESTORE_MOUNT_RELEASED,
  RESTORE_MOUNT_REQUESTED,
  RestoreMountEvent,
} from './restore-mount.events';

export type RestoreMountStatus = 'none' | 'mounting' | 'ready' | 'failed' | 'released';

export interface RestoreMountState {
  status: RestoreMountStatus;
  target: MountTarget | null;
  volumes: MountVolume[];
  /** Whether it ever became ready: downloads that were under way when it was released are still recorded. */
  wasReady: boolean;
  releaseReason: ReleaseReason | null;
}

/** One file of a disk's chain as found on disk: its real path, or why it could not be resolved. */
export type ChainFile = { relative: string; real: string } | { relative: string; real: null; problem: string };

/** What the restore-points read model and the repository's files say about the point asked for. */
export interface PointToMount {
  restorePointId: string;
  vmId: string;
  repositoryId: string;
  status: 'available' | 'deleting' | 'recycled';
  /** Every disk of the point with the files its content reads through, newest first. */
  disks: { diskId: string; chain: ChainFile[] }[];
}

export type RestoreMountCommand =
  | { kind: 'request'; mountId: string; point: PointToMount; diskId?: string; hubInstance: string; idleTimeoutSeconds: number }
  | { kind: 'recordReady'; partitionTable: string; diskSize: number; volumes: MountVolume[] }
  | { kind: 'recordFailed'; reason: string }
  | { kind: 'recordAccess'; volume: string; path: string }
  | { kind: 'recordFileDownload'; volume: string; path: string; bytes: number; range: string | null; complete: boolean; actor: string; integrity: Integrity }
  | { kind: 'recordArchiveDownload'; volume: string; path: string; format: 'tar.gz' | 'zip'; bytes: number; complete: boolean; actor: string; integrity: Integrity }
  /** `hubInstance` is the hub process asking: only the process that holds a mount can take it down. */
  /** `from`: a takeover's release of a mount the gone process `from` held (`hub-gone`). */
  | { kind: 'release'; mountId: string; reason: ReleaseReason; detail?: string | null; hubInstance: string; from?: string };

export function isActive(state: RestoreMountState): boolean {
  return state.status === 'mounting' || state.status === 'ready';
}

/** Which disk of the point to mount: the one named, or the only one. Every refusal happens before the first event. */
function targetOf(command: Extract<RestoreMountCommand, { kind: 'request' }>): MountTarget {
  const { point, diskId } = command;
  // a recycled point's files are all there until its purge, which waits for the mount to end
  if (point.status === 'deleting') throw new DomainError('conflict', `restore point ${point.restorePointId} is being deleted`);
  const diskIds = point.disks.map((d) => d.diskId);
  let disk = diskId === undefined ? undefined : point.disks.find((d) => d.diskId === diskId);
  if (diskId === undefined) {
    if (point.disks.length !== 1) throw new DomainError('invalid', `restore point ${point.restorePointId} has ${point.disks.length} disks (${diskIds.join(', ')}): choose one with diskId`);
    disk = point.disks[0];
  } else if (!disk) {
    throw new DomainError('not_found', `restore point ${point.restorePointId} has no disk ${diskId}; its disks: ${diskIds.join(', ')}`);
  }
  const chainFiles: string[] = [];
  for (const file of disk!.chain) {
    if (file.real === null) throw new DomainError('conflict', `restore point ${point.restorePointId} disk ${disk!.diskId} cannot be mounted: ${file.relative} is missing in repository ${point.repositoryId} (${file.problem})`);
    chainFiles.push(file.real);
  }
  if (!chainFiles.length) throw new DomainError('conflict', `restore point ${point.restorePointId} disk ${disk!.diskId} cannot be mounted: it has no file`);
  return {
    mountId: command.mountId,
    restorePointId: point.restorePointId,
    vmId: point.vmId,
    repositoryId: point.repositoryId,
    diskId: disk!.diskId,
    file: chainFiles[0],
    chainFiles,
    hubInstance: command.hubInstance,
    idleTimeoutSeconds: command.idleTimeoutSeconds,
  };
}

/**
 * The life of one restore mount: requested, then ready or failed, then
 * released. Facts that arrive late (a ready after a release, a second
 * release) change nothing; a download is recorded whenever the mount had
 * been ready, so the audit shows every byte that left, even from a download
 * cut short by a release.
 */
export const restoreMountAggregate: Aggregate<RestoreMountState, RestoreMountCommand, RestoreMountEvent> = {
  initialState: () => ({ status: 'none', target: null, volumes: [], wasReady: false, releaseReason: null }),

  evolve(state, event) {
    switch (event.type) {
      case RESTORE_MOUNT_REQUESTED:
        return { ...state, status: 'mounting', target: event.data as MountTarget };
      case RESTORE_MOUNT_READY:
        return { ...state, status: 'ready', volumes: event.data.volumes, wasReady: true };
      case RESTORE_MOUNT_FAILED:
        return { ...state, status: 'failed' };
      case RESTORE_MOUNT_RELEASED:
        return { ...state, status: 'released', releaseReason: event.data.reason };
      case RESTORE_MOUNT_ACCESSED:
      case RESTORE_FILE_DOWNLOADED:
      case RESTORE_ARCHIVE_DOWNLOADED:
        return state;
    }
  },

  decide(command, state) {
    const mountId = state.target?.mountId ?? '';
    switch (command.kind) {
      case 'request': {
        if (state.status !== 'none') throw new DomainError('conflict', `restore mount ${command.mountId} already exists`);
        return [{ type: RESTORE_MOUNT_REQUESTED, data: { ...targetOf(command) } }];
      }
      case 'recordReady':
        if (state.status !== 'mounting') return [];
        return [{ type: RESTORE_MOUNT_READY, data: { mountId, partitionTable: command.partitionTable, diskSize: command.diskSize, volumes: command.volumes } }];
      case 'recordFailed':
        return state.status === 'mounting' ? [{ type: RESTORE_MOUNT_FAILED, data: { mountId, reason: command.reason } }] : [];
      case 'recordAccess':
        return state.status === 'ready' ? [{ type: RESTORE_MOUNT_ACCESSED, data: { mountId, volume: command.volume, path: command.path } }] : [];
      case 'recordFileDownload': {
        if (!state.wasReady) return [];
        const { volume, path, bytes, range, complete, actor, integrity } = command;
        return [{ type: RESTORE_FILE_DOWNLOADED, data: { mountId, volume, path, bytes, range, complete, actor, integrity } }];
      }
      case 'recordArchiveDownload': {
        if (!state.wasReady) return [];
        const { volume, path, format, bytes, complete, actor, integrity } = command;
        return [{ type: RESTORE_ARCHIVE_DOWNLOADED, data: { mountId, volume, path, format, bytes, complete, actor, integrity } }];
      }
      case 'release':
        if (!mayRelease(state, command.mountId, command.from ?? command.hubInstance)) return [];
        return [{ type: RESTORE_MOUNT_RELEASED, data: { mountId, reason: command.reason, detail: command.detail ?? null } }];
    }
  },
};

/**
 * Whether this hub process has a release to record: false when the mount is already over; a
 * mount that does not exist, or that another hub process holds, is refused.
 */
export function mayRelease(state: RestoreMountState, mountId: string, hubInstance: string): boolean {
  if (state.status === 'none') throw new DomainError('not_found', `restore mount ${mountId} does not exist`);
  if (!isActive(state)) return false;
  if (state.target!.hubInstance !== hubInstance) throw new DomainError('conflict', `restore mount ${mountId} is held by another hub process; release it there`);
  return true;
}

/** Why the files of a mount this hub process does not serve cannot be read. */
export function notBrowsable(state: RestoreMountState, mountId: string, hubInstance: string, releasing: boolean): DomainError {
  switch (state.status) {
    case 'none':
      return new DomainError('not_found', `restore mount ${mountId} does not exist`);
    case 'failed':
      return new DomainError('conflict', `restore mount ${mountId} failed; mount the restore point again`);
    case 'released':
      return new DomainError('conflict', `restore mount ${mountId} was released (${state.releaseReason}); mount the restore point again`);
    default:
      if (state.target!.hubInstance !== hubInstance) return new DomainError('conflict', `restore mount ${mountId} is held by another hub process`);
      return new DomainError('conflict', `restore mount ${mountId} is ${releasing ? 'being released' : 'still being mounted'}`);
  }
}
