import { closeSync, constants, openSync } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';
import { imageArgs, imageKeys, qemuOptionValue } from './image-keys';

/** A hub export: one disk on a TCP port, for a lease. */
export interface QemuNbdExportSpec {
  /** Lease uuid; names the files in runDir, so only [A-Za-z0-9_-] is accepted. */
  leaseId: string;
  /** TCP port, on 127.0.0.1 unless the export requires TLS. */
  port: number;
  /** Absolute path of the image, or of a chunk point's index (format 'chunks': src/nbd/qemu-nbd/qemu-nbd-manager.ts runs the chunk store's own server). */
  file: string;
  format: 'qcow2' | 'raw' | 'chunks';
  readOnly: boolean;
  /** format 'chunks', writable: the new point's size and the index of the point it starts as. */
  create?: { size: number; base: string | null };
  /** NBD export name (-x). */
  exportName: string;
  /** Persistent dirty bitmap exposed as the meta context qemu:dirty-bitmap:NAME (-B). */
  bitmap?: string;
  /** Write around the page cache (--cache=none, O_DIRECT); only where the file's filesystem supports it (see supportsDirectIo). */
  directIo?: boolean;
  /**
   * Clients must switch to TLS before anything else and prove they hold the key in pskDir/keys.psk
   * (qemu's tls-creds-psk): such an export may listen beyond loopback, on `bind`, for agents on other hosts.
   */
  tls?: { pskDir: string; bind: string };
}

/**
 * An export on a Unix socket: the agent's source snapshots and restore mounts (read-only), and the new disk a
 * restore writes on the agent's host (`writable`). No port to lease, and nothing outside the host can reach it.
 */
export interface SocketExportSpec {
  file: string;
  format: 'qcow2' | 'raw';
  socket: string;
  exportName: string;
  /** Concurrent clients (--shared): nbdcopy and nbdfuse open several connections (multi-conn). */
  shared: number;
  bitmap?: string;
  /** Accept writes (a restore's target); `directIo` then writes around the page cache, as a backup target does (see buildQemuNbdArgs). */
  writable?: { directIo: boolean };
}

/** nbdcopy alone opens 4 connections to a read-only export (multi-conn); the default of 1 makes a second client hang. */
export const MAX_CLIENTS = 8;

/** NBD caps export names at 4096 bytes. */
const MAX_EXPORT_NAME_BYTES = 4096;
const LEASE_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The qemu-nbd command line for one export, without the binary.
 *
 * --cache: in both modes an NBD FLUSH makes qemu write its qcow2 metadata and
 * fdatasync() the file, so acknowledged flushes are durable. A backup target
 * writes a whole disk once and nobody reads it back soon: through the page
 * cache (writeback) every byte is also copied into freshly allocated cache
 * pages, which made the target qemu-nbd the busiest process of a backup;
 * none (O_DIRECT) skips that copy (docs/benchmarks.md, backup). O_DIRECT
 * fails on some filesystems, so it is asked for per export (directIo).
 *
 * --pid-file: qemu-nbd writes it after the image is open and the export
 * exists, whereas it listens on the port before opening the image; the
 * launcher needs both to know the server is ready (see isServing).
 */
export function buildQemuNbdArgs(spec: QemuNbdExportSpec, qemuPidFile: string): string[] {
  validateExportSpec(spec);
  const args = [
    '--persistent',
    `--shared=${MAX_CLIENTS}`,
    '-b', spec.tls?.bind ?? '127.0.0.1',
    '-p', String(spec.port),
    '-x', spec.exportName,
    spec.directIo ? '--cache=none' : '--cache=writeback',
  ];
  // qemu's option syntax takes "," as a separator; a literal comma in a path is written twice.
  if (spec.tls) args.push('--object', `tls-creds-psk,id=tls0,endpoint=server,dir=${qemuOptionValue(spec.tls.pskDir)}`, '--tls-creds=tls0');
  // -A (qemu:allocation-depth): a hub copying one restore point from another reads which clusters the point's own file holds.
  if (spec.readOnly) args.push('-r', '-A');
  else args.push('--discard=unmap', '--detect-zeroes=unmap');
  if (spec.bitmap !== undefined) args.push('-B', spec.bitmap);
  args.push(`--pid-file=${qemuPidFile}`, ...imageOf({ file: spec.file, format: spec.format as 'qcow2' | 'raw' }));
  return args;
}

/**
 * A read-only export reads through io_uring: with the default thread pool every read of the image's
 * metadata is handed to a worker thread and back, and opening a restore point at the end of a long chain
 * reads the header and tables of every file of it (the newest of 201 points: serving after 325 ms with the
 * thread pool, 233 ms with io_uring; docs/benchmarks.md, chain). Writes showed no difference, so a backup or restore target keeps the default.
 */
export const IO_URING = '--aio=io_uring';
let ioUringRefused = false;

/** A kernel or seccomp filter that forbids io_uring makes qemu-nbd refuse to start; the launcher then stops asking for it. */
export function refuseIoUring(): void {
  ioUringRefused = true;
}

/**
 * -r: the export refuses writes, and qemu opens every file of the chain
 * read-only. Its shared image lock still forbids writers: while it runs, a VM
 * or a merge (qemu-img commit) on any file of the chain fails with "Failed to
 * get write lock" instead of changing what is read.
 * --persistent: without it qemu-nbd exits when its first client disconnects.
 * pidFile, when given, is the launcher's readiness signal (see buildQemuNbdArgs).
 */
export function buildSocketExportArgs(spec: SocketExportSpec, pidFile?: string): string[] {
  const access = spec.writable ? [spec.writable.directIo ? '--cache=none' : '--cache=writeback'] : ['-r', ...(ioUringRefused ? [] : [IO_URING])];
  const args = [...access, '--persistent', `--shared=${spec.shared}`, '-k', spec.socket, '-x', spec.exportName];
  if (spec.bitmap !== undefined) args.push('-B', spec.bitmap);
  if (pidFile !== undefined) args.push(`--pid-file=${pidFile}`);
  args.push(...imageOf(spec));
  return args;
}

/** The image last, as a plain file or, for a chain with an encrypted file, with its key (see image-keys.ts). */
function imageOf(spec: { file: string; format: 'qcow2' | 'raw' }): string[] {
  return imageArgs(spec.file, spec.format === 'qcow2' ? imageKeys.keyForImage(spec.file) : undefined, spec.format);
}

/**
 * Whether `file` opens with O_DIRECT: some filesystems refuse it (EINVAL), and qemu-nbd --cache=none could not
 * open the image there. Any other failure answers false too: qemu-nbd then reports it in its own words.
 */
export function supportsDirectIo(file: string): boolean {
  try {
    closeSync(openSync(file, constants.O_RDONLY | constants.O_DIRECT));
    return true;
  } catch {
    return false;
  }
}

export function isValidLeaseId(leaseId: unknown): leaseId is string {
  return typeof leaseId === 'string' && LEASE_ID.test(leaseId);
}

export function validateExportSpec(spec: QemuNbdExportSpec): void {
  const problems: string[] = [];
  if (!isValidLeaseId(spec.leaseId)) problems.push(`leaseId ${JSON.stringify(spec.leaseId)} must match ${LEASE_ID} (it becomes part of file names)`);
  if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) problems.push(`port ${spec.port} is not a TCP port`);
  if (typeof spec.file !== 'string' || !isAbsolute(spec.file)) problems.push(`file ${JSON.stringify(spec.file)} must be an absolute path`);
  if (spec.format !== 'qcow2' && spec.format !== 'raw') problems.push(`format ${JSON.stringify(spec.format)} must be qcow2 or raw`);
  if (typeof spec.readOnly !== 'boolean') problems.push('readOnly must be a boolean');
  if (typeof spec.exportName !== 'string' || Buffer.byteLength(spec.exportName) > MAX_EXPORT_NAME_BYTES) {
    problems.push(`exportName must be a string of at most ${MAX_EXPORT_NAME_BYTES} bytes`);
  }
  if (spec.bitmap !== undefined && (typeof spec.bitmap !== 'string' || spec.bitmap === '')) problems.push('bitmap, when given, must be a non-empty name');
  if (spec.directIo !== undefined && typeof spec.directIo !== 'boolean') problems.push('directIo, when given, must be a boolean');
  if (spec.tls !== undefined) {
    if (typeof spec.tls.pskDir !== 'string' || !isAbsolute(spec.tls.pskDir)) problems.push(`tls.pskDir ${JSON.stringify(spec.tls.pskDir)} must be an absolute path`);
    if (isIP(spec.tls.bind) === 0) problems.push(`tls.bind ${JSON.stringify(spec.tls.bind)} must be an IP address`);
  }
  for (const [name, value] of [['file', spec.file], ['exportName', spec.exportName], ['bitmap', spec.bitmap], ['tls.pskDir', spec.tls?.pskDir]] as const) {
    // argv strings cannot carry NUL, and /proc/PID/cmdline could no longer be compared for adopt().
    if (typeof value === 'string' && value.includes('\0')) problems.push(`${name} must not contain NUL`);
  }
  if (problems.length > 0) throw new Error(`invalid qemu-nbd export spec: ${problems.join('; ')}`);
}
