import { DomainEvent } from '../../eventing/aggregate';

export const QEMU_NBD_START_REQUESTED = 'QemuNbdStartRequested';
export const QEMU_NBD_STARTED = 'QemuNbdStarted';
export const QEMU_NBD_START_FAILED = 'QemuNbdStartFailed';
export const QEMU_NBD_EXITED = 'QemuNbdExited';
export const QEMU_NBD_STOPPED = 'QemuNbdStopped';

export interface ExportTarget {
  leaseId: string;
  port: number;
  jobId: string;
  diskId: string;
  /** The image, or for format 'chunks' a chunk point's index (served by the chunk store's own NBD server, not qemu-nbd). */
  file: string;
  format: 'qcow2' | 'raw' | 'chunks';
  readOnly: boolean;
  /** A new chunk point written through the export, committed when it stops: its size, and the point it starts as (absent: zeros). */
  create?: { size: number; base: string | null };
  exportName: string;
  bitmap: string | null;
  /** Clients must use TLS with the export's own pre-shared key (not recorded); absent in events before it existed. */
  tls?: boolean;
  /** Which hub process owns the child process; only it may adopt or stop it. */
  hubInstance: string;
}

export type QemuNbdStartRequested = DomainEvent<typeof QEMU_NBD_START_REQUESTED, ExportTarget & Record<string, unknown>>;
export type QemuNbdStarted = DomainEvent<
  typeof QEMU_NBD_STARTED,
  { leaseId: string; pid: number; port: number; file: string; exportName: string; args: string[]; hubInstance: string }
>;
export type QemuNbdStartFailed = DomainEvent<typeof QEMU_NBD_START_FAILED, { leaseId: string; reason: string }>;
export type QemuNbdExited = DomainEvent<
  typeof QEMU_NBD_EXITED,
  { leaseId: string; pid: number; code: number | null; signal: string | null; stderrTail: string; expected: boolean }
>;
export type QemuNbdStopped = DomainEvent<typeof QEMU_NBD_STOPPED, { leaseId: string }>;
export type QemuNbdEvent = QemuNbdStartRequested | QemuNbdStarted | QemuNbdStartFailed | QemuNbdExited | QemuNbdStopped;

export const QEMU_NBD_STREAM_PREFIX = 'qemu-nbd-';
export const qemuNbdStream = (leaseId: string) => `${QEMU_NBD_STREAM_PREFIX}${leaseId}`;
