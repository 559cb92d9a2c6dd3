import type { NbdPsk } from '../../nbd-protocol/tls-psk';
import type { QemuNbdExportSpec } from '../../qemu/qemu-nbd-args';
export type { QemuNbdExportSpec };

/** What the manager starts: with `tls`, it makes the export's key itself (qemu-nbd-<lease>.psk in runDir). */
export type ManagedExportSpec = Omit<QemuNbdExportSpec, 'tls' | 'directIo'> & { tls?: { bind: string } };

export interface QemuNbdExit {
  leaseId: string;
  pid: number;
  code: number | null;
  signal: string | null;
  stderrTail: string;
  /** True when stop(), stopAll() or killOrphan() asked for the exit. */
  expected: boolean;
}

export interface RunningExport {
  leaseId: string;
  pid: number;
  port: number;
  file: string;
  args: string[];
  startedAt: Date;
  /** Started by an earlier run of the hub and taken over by adopt(): not our child. */
  adopted: boolean;
  /** The key a client needs, for an export that requires TLS. */
  psk?: NbdPsk;
}

/** Contents of runDir/qemu-nbd-<leaseId>.json, written once the export is ready. */
export interface PidFileRecord {
  leaseId: string;
  pid: number;
  port: number;
  file: string;
  args: string[];
  /** ISO 8601. */
  startedAt: string;
}

export type QemuNbdLogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface QemuNbdManagerOptions {
  /** Holds pid files, qemu-nbd's own pid files and stderr logs; must outlive the hub process. */
  runDir: string;
  /** Default 'qemu-nbd' (looked up in PATH). */
  binary?: string;
  /** Grace period between SIGTERM and SIGKILL; default 30 s (see DEFAULT_STOP_TIMEOUT_MS). */
  stopTimeoutMs?: number;
  /** The same for a chunk point's writer, which commits its point when stopped; default 10 min (DEFAULT_COMMIT_TIMEOUT_MS). */
  commitTimeoutMs?: number;
  /** Default 10 s. */
  readyTimeoutMs?: number;
  onExit: (exit: QemuNbdExit) => void;
  log?: (level: QemuNbdLogLevel, message: string) => void;
}
