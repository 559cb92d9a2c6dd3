import { printable, PRINTABLE_NAME, UUID_PATTERN } from './identifiers';
/** What the hub asks of the agent, and what the agent reports back: both ends import these shapes. */

/**
 * The disks of the point an incremental builds on, as the hub recorded them. `changeRef` is what the agent
 * reported for the disk (a VMware changeId): sources whose change tracking lives outside the VM's own
 * files (VMware's CBT) continue the chain from it.
 */
export interface SinceDisk {
  diskId: string;
  virtualSize: number;
  changeRef: string | null;
}

export interface PlanRequest {
  vmId: string;
  sincePointId: string | null;
  /** With sincePointId: that point's disks. */
  sinceDisks?: SinceDisk[];
}

/** The formats a source reports its disks in: what the hub's targets are created from. */
export const DISK_FORMATS = ['qcow2', 'raw'] as const;
export type DiskFormat = (typeof DISK_FORMATS)[number];

export interface PlanAnswer {
  mode: 'full' | 'incremental';
  reason: string | null;
  /** A full because a disk that tracks changes lost them since the point asked about: the chain breaks there. */
  chainBroken?: boolean;
  disks: { diskId: string; virtualSize: number; format: string }[];
  /** Disks of the VM that hold data the source cannot read (a network or block device, an unsupported format): not in the point, and the job says so. */
  leftOut?: DiskLeftOut[];
}

/** A disk of a VM that backups do not hold, and why. Its id is the source's name for it (`vdb`), shown, never a file name. */
export interface DiskLeftOut {
  diskId: string;
  reason: string;
}

/** Most disks left out one point may name, and the longest reason kept for one: the rest of a peer's text is cut. */
export const MAX_LEFT_OUT = 256;
export const MAX_LEFT_OUT_REASON = 1000;

/**
 * Why a list of disks left out that a peer sent (an agent's plan, another hub's point) cannot be taken, or null:
 * they are shown to operators and kept with the point, names of up to 128 printable characters (a source's own,
 * `vdb`, never a file name here), each with a reason.
 */
export function leftOutProblem(field: string, leftOut: unknown): string | null {
  if (!Array.isArray(leftOut) || leftOut.length > MAX_LEFT_OUT) return `${field} must list at most ${MAX_LEFT_OUT} disks`;
  for (const [i, disk] of leftOut.entries()) {
    if (typeof disk !== 'object' || disk === null) return `${field}[${i}] is not an object`;
    const { diskId, reason } = disk as Record<string, unknown>;
    if (typeof diskId !== 'string' || !PRINTABLE_NAME.test(diskId)) return `${field}[${i}].diskId must be 1-128 printable characters`;
    if (typeof reason !== 'string' || reason.length === 0) return `${field}[${i}].reason must be a non-empty string`;
  }
  return null;
}

/** What is kept of disks left out as a peer or a manifest named them: the two fields alone, cut, and printable. */
export function keptLeftOut(leftOut: readonly DiskLeftOut[]): DiskLeftOut[] {
  return leftOut.slice(0, MAX_LEFT_OUT).map(({ diskId, reason }) => ({ diskId: printable(diskId.slice(0, 128)), reason: printable(reason.slice(0, MAX_LEFT_OUT_REASON)) }));
}

export interface StartRequest {
  jobId: string;
  /** The job's audit story: the agent sends it back as the X-Correlation-Id of every report on this job. */
  correlationId: string;
  /** The hub event that asked for this backup (SnapshotRequested): the agent names it as the cause of every report (`X-Causation-Id`). */
  causationId: string;
  vmId: string;
  type: 'full' | 'incremental';
  restorePointId: string;
  sincePointId: string | null;
  /** With sincePointId: that point's disks. */
  sinceDisks?: SinceDisk[];
  /**
   * Each disk's target: the hub's export on `port` of the host the agent's tunnel dials, reached
   * directly over TLS with the export's own pre-shared key (the hub hands it over only here, inside the tunnel):
   * `identity` and `key` (hex) as in qemu's keys.psk. `known` (a full into a chunk repository): the target already
   * holds a restore point of a VM this agent reports, whose block digests the agent fetches
   * (`GET /api/v1/backups/{jobId}/disks/{diskId}/known-digests`) and does not send again.
   */
  disks: { diskId: string; nbd: { port: number; exportName: string; psk: { identity: string; key: string } }; known?: boolean }[];
}

/**
 * How consistent a restore point is: `application` when the guest's filesystems were frozen through its
 * guest agent for the snapshot's instant, `crash` otherwise (`reason` says why: no guest agent, the freeze
 * failed, the VM was powered off). `freezeMs`: how long the guest stayed frozen, null when it was not.
 */
export interface Consistency {
  consistency: 'application' | 'crash';
  consistencyReason: string | null;
  freezeMs: number | null;
}

export type AgentReport =
  /** `consistency` is absent from agents whose source cannot tell (the qemu-image driver: a powered-off VM). */
  | ({ type: 'snapshot-created'; snapshotId: string; diskIds: string[] } & Partial<Consistency>)
  | { type: 'transfer-started'; diskId: string; bytesPlanned: number }
  | { type: 'transfer-progressed'; diskId: string; bytesDone: number; bytesPlanned: number; rate: number }
  | { type: 'transfer-completed'; diskId: string; bytesWritten: number; bytesZeroed: number; bytesPlanned: number; durationMs: number; changeRef: string | null; bytesKnown?: number }
  | { type: 'snapshot-removed'; snapshotId: string }
  | { type: 'finished' }
  | { type: 'failed'; reason: string };

/** The header a report carries the job's correlation id in (the hub's request context reads it). */
export const CORRELATION_HEADER = 'X-Correlation-Id';
export const VALID_CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** The header a report names its cause in: the hub event id the start request carried. */
export const CAUSATION_HEADER = 'X-Causation-Id';
export const VALID_EVENT_ID = UUID_PATTERN;
