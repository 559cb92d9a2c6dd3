export interface QemuNbdExportSpec {
  /** Lease uuid; names the files in runDir, so only [A-Za-z0-9_-] is accepted. */
  leaseId: string;
  /** TCP port on 127.0.0.1. */
  port: number;
  /** Absolute path of the image. */
  file: string;
  format: 'qcow2' | 'raw';
  readOnly: boolean;
  /** NBD export name (-x). */
  exportName: string;
  /** Persistent dirty bitmap exposed as the meta context qemu:dirty-bitmap:NAME (-B). */
  bitmap?: string;
}

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
  /** Default 10 s. */
  readyTimeoutMs?: number;
  onExit: (exit: QemuNbdExit) => void;
  log?: (level: QemuNbdLogLevel, message: string) => void;
}
