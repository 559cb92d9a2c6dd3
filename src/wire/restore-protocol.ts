/** What the hub asks of an agent to bring a VM back, and what the agent reports: both ends import these shapes. */
import type { VmConfiguration } from './vm-configuration';

/** Where the restored VM goes: a new domain beside whatever exists, or the disks of an existing (shut off) domain. */
export type RestoreTarget =
  | { kind: 'new-domain'; name: string; storageDir: string | null; start: boolean }
  | { kind: 'replace'; vmId: string }
  /** A recovery drill: the point booted from the hub's export as a transient domain without network, checked, and removed. */
  | { kind: 'drill'; timeoutSeconds: number };

/** For a point without a recorded configuration: the little the operator must say to make a domain of its disks. */
export interface MinimalDefinition {
  memoryMiB: number;
  vcpus: number;
}

/** What the agent checks before the hub records a restore: whether the target can take this point's disks. */
export interface RestoreCheckRequest {
  restoreId: string;
  /** The restore's audit story: the agent sends it back as the X-Correlation-Id of every report. */
  correlationId: string;
  restorePointId: string;
  /** The VM the point belongs to (the source's id). */
  vmId: string;
  /**
   * full: every block copied to this host before the domain exists. instant: the domain boots on overlays backed
   * by the hub's export and a background copy makes it local (a new domain), or it is checked and removed (a drill).
   */
  mode: 'full' | 'instant';
  target: RestoreTarget;
  /** The domain as the point recorded it; null for a point without one, restored from `definition`. */
  configuration: VmConfiguration | null;
  definition: MinimalDefinition | null;
  /**
   * Each disk of the point; `digests`: whether the hub holds the point's digests for it, which the agent then fetches and checks every block it writes against;
   * `requiredBytes`: what a qcow2 of the disk as the point reads it takes (`qemu-img measure` on the hub), which the check compares with the target's free space; absent when the hub could not tell.
   */
  disks: { diskId: string; virtualSize: number; digests: boolean; requiredBytes?: number }[];
}

export interface RestoreStartRequest extends RestoreCheckRequest {
  /** The hub event that asked for this restore (its RestoreStarted): the agent names it as the cause of every report (`X-Causation-Id`). */
  causationId: string;
  /** As in the check, each with the hub's read-only export of it on `port` of the host the tunnel dials, over TLS with the export's own key (as a backup's targets). */
  disks: { diskId: string; virtualSize: number; digests: boolean; nbd: { port: number; exportName: string; psk: { identity: string; key: string } } }[];
}

/** A block whose restored content differs from what the point's digests say it held. */
export interface DamagedBlock {
  diskId: string;
  offset: number;
  length: number;
  expected: string;
  actual: string;
}

export type RestoreReport =
  /** The files the restore writes (new ones, or the replaced domain's, written beside and renamed over at the end). */
  | { type: 'restore-started'; disks: { diskId: string; path: string }[] }
  | { type: 'disk-progressed'; diskId: string; bytesDone: number; bytesPlanned: number; rate: number }
  | { type: 'disk-completed'; diskId: string; bytesWritten: number; bytesZeroed: number; bytesPlanned: number; durationMs: number; verifiedBlocks: number }
  | { type: 'domain-defined'; name: string; uuid: string }
  /** Instant recovery: the domain runs on overlays backed by the hub's export; the background copy starts. */
  | { type: 'instant-running'; name: string; uuid: string }
  /**
   * Instant recovery: the background copy cannot go on for `reason` (the overlays' filesystem full, the domain shut
   * off): it waits, the domain kept, until the reason clears or the restore is cancelled; `null` once it goes on.
   */
  | { type: 'copy-stalled'; reason: string | null }
  | { type: 'finished'; domain: { name: string; uuid: string; started: boolean } }
  /** A drill's verdict; everything it made on the host is already gone. `screenshot`: the console at the verdict (an image, or a serial console's last lines). */
  | { type: 'drill-finished'; passed: boolean; bootMs: number | null; reason: string | null; screenshot: DrillScreenshot | null }
  | { type: 'failed'; reason: string; damaged: DamagedBlock[] };

export interface DrillScreenshot {
  contentType: 'image/png' | 'image/x-portable-pixmap' | 'text/plain';
  /** base64 */
  data: string;
}
