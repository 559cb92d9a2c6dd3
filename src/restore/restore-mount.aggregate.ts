import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
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

export type RestoreMountCommand =
  | { kind: 'request'; target: MountTarget }
  | { kind: 'recordReady'; partitionTable: string; diskSize: number; volumes: MountVolume[] }
  | { kind: 'recordFailed'; reason: string }
  | { kind: 'recordAccess'; volume: string; path: string }
  | { kind: 'recordFileDownload'; volume: string; path: string; bytes: number; range: string | null; complete: boolean; actor: string }
  | { kind: 'recordArchiveDownload'; volume: string; path: string; format: 'tar.gz' | 'zip'; bytes: number; complete: boolean; actor: string }
  | { kind: 'release'; reason: ReleaseReason; detail?: string | null };

export function isActive(state: RestoreMountState): boolean {
  return state.status === 'mounting' || state.status === 'ready';
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
      case 'request':
        if (state.status !== 'none') throw new DomainError('conflict', `restore mount ${command.target.mountId} already exists`);
        return [{ type: RESTORE_MOUNT_REQUESTED, data: { ...command.target, chainFiles: [...command.target.chainFiles] } }];
      case 'recordReady':
        if (state.status !== 'mounting') return [];
        return [{ type: RESTORE_MOUNT_READY, data: { mountId, partitionTable: command.partitionTable, diskSize: command.diskSize, volumes: command.volumes } }];
      case 'recordFailed':
        return state.status === 'mounting' ? [{ type: RESTORE_MOUNT_FAILED, data: { mountId, reason: command.reason } }] : [];
      case 'recordAccess':
        return state.status === 'ready' ? [{ type: RESTORE_MOUNT_ACCESSED, data: { mountId, volume: command.volume, path: command.path } }] : [];
      case 'recordFileDownload': {
        if (!state.wasReady) return [];
        const { volume, path, bytes, range, complete, actor } = command;
        return [{ type: RESTORE_FILE_DOWNLOADED, data: { mountId, volume, path, bytes, range, complete, actor } }];
      }
      case 'recordArchiveDownload': {
        if (!state.wasReady) return [];
        const { volume, path, format, bytes, complete, actor } = command;
        return [{ type: RESTORE_ARCHIVE_DOWNLOADED, data: { mountId, volume, path, format, bytes, complete, actor } }];
      }
      case 'release':
        if (state.status === 'none') throw new DomainError('not_found', `restore mount does not exist`);
        if (!isActive(state)) return [];
        return [{ type: RESTORE_MOUNT_RELEASED, data: { mountId, reason: command.reason, detail: command.detail ?? null } }];
    }
  },
};
