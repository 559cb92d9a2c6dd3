import { isLockMessage } from '../../../qemu/qemu-img';
import type { DiskProblem } from './types';

/** qemu-img failures and lock detection belong to the shared wrapper; the driver's callers see them among its errors. */
export { isLockMessage, QemuImgError } from '../../../qemu/qemu-img';

/** The inventory document is malformed; `problems` lists every problem found, not only the first. */
export class InventoryError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid inventory (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'InventoryError';
  }
}

/** Some disks of the inventory cannot be backed up (missing file, unsupported format, ...). */
export class DiskInspectionError extends Error {
  constructor(readonly problems: DiskProblem[]) {
    super(
      `${problems.length} disk${problems.length === 1 ? '' : 's'} of the inventory cannot be backed up:\n` +
        problems.map((p) => `  - VM ${p.vmId} disk ${p.diskId} (${p.path}): ${p.message}`).join('\n'),
    );
    this.name = 'DiskInspectionError';
  }
}

export class UnknownVmError extends Error {
  constructor(readonly vmId: string) {
    super(`VM ${vmId} is not in the inventory`);
    this.name = 'UnknownVmError';
  }
}

/**
 * An image is locked by another process that has it open for writing: a
 * running VM (or a qemu-nbd/qemu-io holding it writable). The driver backs up
 * powered-off VMs only.
 */
export class VmRunningError extends Error {
  constructor(
    readonly vmId: string,
    readonly diskId: string,
    readonly path: string,
    readonly qemuMessage: string,
  ) {
    super(
      `VM ${vmId} appears to be running: disk ${diskId} (${path}) is locked by another process that has it open ` +
        `(qemu: ${qemuMessage}). Shut the VM down, or stop whatever holds the image, and retry.`,
    );
    this.name = 'VmRunningError';
  }
}

/** A snapshot of the VM is open, so its images are held read-only by our own qemu-nbd. */
export class SnapshotOpenError extends Error {
  constructor(
    readonly vmId: string,
    readonly snapshotId: string,
    what: string,
  ) {
    super(`cannot ${what} VM ${vmId}: snapshot ${snapshotId} is still open (close it first)`);
    this.name = 'SnapshotOpenError';
  }
}

/** openSnapshot could not open every disk; whatever it had opened has been closed again. */
export class SnapshotError extends Error {
  constructor(
    readonly vmId: string,
    readonly failures: Array<{ diskId: string; path: string; message: string }>,
  ) {
    super(`cannot open a snapshot of VM ${vmId}: ${failures.map((f) => `disk ${f.diskId} (${f.path}): ${f.message}`).join('; ')}`);
    this.name = 'SnapshotError';
  }
}

/** The first line of qemu's message that says what went wrong, without the program name prefix. */
export function qemuSummary(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const line = lines.find((l) => isLockMessage(l)) ?? lines[lines.length - 1] ?? '';
  return line.replace(/^qemu-(img|nbd|io): /, '');
}

/** A request to the driver is malformed (e.g. a restore point id that cannot be part of a bitmap name). */
export class InvalidRequestError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'InvalidRequestError';
  }
}
