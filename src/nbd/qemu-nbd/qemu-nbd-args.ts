import { isAbsolute } from 'node:path';
import type { QemuNbdExportSpec } from './qemu-nbd.types';

/** nbdcopy alone opens 4 connections to a read-only export (multi-conn); the default of 1 makes a second client hang. */
export const MAX_CLIENTS = 8;

/** NBD caps export names at 4096 bytes. */
const MAX_EXPORT_NAME_BYTES = 4096;
const LEASE_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The qemu-nbd command line for one export, without the binary.
 *
 * --cache=writeback (qemu-nbd's default, spelled out): an NBD FLUSH makes qemu
 * write its qcow2 metadata and fdatasync() the file, so acknowledged flushes
 * are durable. cache=none (O_DIRECT) was 25-50% slower for nbdcopy into qcow2
 * on our disks and fails on filesystems without O_DIRECT (tmpfs).
 *
 * --pid-file: qemu-nbd writes it after the image is open and the export
 * exists, whereas it listens on the port before opening the image; the manager
 * needs both to know the server is ready (see waitUntilReady).
 */
export function buildQemuNbdArgs(spec: QemuNbdExportSpec, qemuPidFile: string): string[] {
  validateExportSpec(spec);
  const args = [
    '-f', spec.format,
    '--persistent',
    `--shared=${MAX_CLIENTS}`,
    '-b', '127.0.0.1',
    '-p', String(spec.port),
    '-x', spec.exportName,
    '--cache=writeback',
  ];
  if (spec.readOnly) args.push('-r');
  else args.push('--discard=unmap', '--detect-zeroes=unmap');
  if (spec.bitmap !== undefined) args.push('-B', spec.bitmap);
  args.push(`--pid-file=${qemuPidFile}`, spec.file);
  return args;
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
  for (const [name, value] of [['file', spec.file], ['exportName', spec.exportName], ['bitmap', spec.bitmap]] as const) {
    // argv strings cannot carry NUL, and /proc/PID/cmdline could no longer be compared for adopt().
    if (typeof value === 'string' && value.includes('\0')) problems.push(`${name} must not contain NUL`);
  }
  if (problems.length > 0) throw new Error(`invalid qemu-nbd export spec: ${problems.join('; ')}`);
}
