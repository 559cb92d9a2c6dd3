import { DomainEvent } from '../eventing/aggregate';

export const POINT_EXPORT_OPENED = 'PointExportOpened';
export const POINT_EXPORT_CLOSED = 'PointExportClosed';

export interface PointExportDisk {
  diskId: string;
  /** Real path of the point's top file for this disk; qemu-nbd reads its backing chain. */
  file: string;
  leaseId: string;
  port: number;
  /** Where a client dials: SENDENSE_NBD_BIND when it names one address, else the host name the API was called by; 127.0.0.1 for a plain export. */
  host: string;
  exportName: string;
}

export interface PointExportOpenedData {
  exportId: string;
  restorePointId: string;
  vmId: string;
  repositoryId: string;
  /** The hub data dir whose process runs the qemu-nbds: only it can stop them. */
  hubInstance: string;
  tls: boolean;
  disks: PointExportDisk[];
}

/** `hub-gone`: closed by another hub once the process that served it stopped and did not come back. */
export type PointExportCloseReason = 'requested' | 'hub-shutdown' | 'hub-restart' | 'qemu-nbd-exited' | 'answer-abandoned' | 'hub-gone';

export type PointExportOpened = DomainEvent<typeof POINT_EXPORT_OPENED, PointExportOpenedData & Record<string, unknown>>;
export type PointExportClosed = DomainEvent<typeof POINT_EXPORT_CLOSED, { exportId: string; reason: PointExportCloseReason; detail: string | null }>;
export type PointExportEvent = PointExportOpened | PointExportClosed;

export const POINT_EXPORT_STREAM_PREFIX = 'point-export-';
export const pointExportStream = (exportId: string) => `${POINT_EXPORT_STREAM_PREFIX}${exportId}`;
