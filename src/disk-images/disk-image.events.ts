import { DomainEvent } from '../eventing/aggregate';
import type { Integrity } from '../restore-points/chain.aggregate';

export const DISK_IMAGE_DOWNLOADED = 'DiskImageDownloaded';

export type DiskImageFormat = 'raw' | 'qcow2';

export interface DiskImageDownload {
  restorePointId: string;
  vmId: string;
  repositoryId: string;
  diskId: string;
  format: DiskImageFormat;
  /** Bytes that actually left (zeroes of holes included). */
  bytes: number;
  /** Bytes a whole answer carries: the virtual size (raw) or the converted file's size (qcow2). */
  size: number;
  /** `bytes=FIRST-LAST` of a 206 answer, else null. */
  range: string | null;
  /** False when the client went away or a read failed before the last byte. */
  completed: boolean;
  /** The point's integrity when the download started. */
  integrity: Integrity;
  /** A corrupt point taken anyway with ?force=true. */
  forced: boolean;
  actor: string;
  /** Why it stopped early (null when completed). */
  error: string | null;
}

export type DiskImageDownloaded = DomainEvent<typeof DISK_IMAGE_DOWNLOADED, DiskImageDownload & Record<string, unknown>>;
export type DiskImageEvent = DiskImageDownloaded;

/** Every download of any disk of one restore point: who took what from it. */
export const DISK_IMAGE_DOWNLOADS_STREAM_PREFIX = 'disk-image-downloads-';
export const diskImageDownloadsStream = (restorePointId: string) => `${DISK_IMAGE_DOWNLOADS_STREAM_PREFIX}${restorePointId}`;
