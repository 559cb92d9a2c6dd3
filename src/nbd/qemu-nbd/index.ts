export { QemuNbdManager, DEFAULT_READY_TIMEOUT_MS, DEFAULT_STOP_TIMEOUT_MS } from './qemu-nbd-manager';
export { buildQemuNbdArgs, MAX_CLIENTS } from '../../qemu/qemu-nbd-args';
export type { PidFileRecord, QemuNbdExit, QemuNbdExportSpec, QemuNbdLogLevel, QemuNbdManagerOptions, RunningExport } from './qemu-nbd.types';
