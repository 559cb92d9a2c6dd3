import { buildSocketExportArgs } from '../../qemu/qemu-nbd-args';
import { launchQemuNbd, QemuNbdStartError } from '../../qemu/qemu-nbd-launcher';
import { isChunkPointFile } from '../../repositories/chunks/chunk-points';
import { socketExportLaunch } from '../../repositories/chunks/point-server';
import { HelperChild } from './helper-processes';
import { startFailureMessage } from './readiness';
import { EXPORT_NAME, workDirLayout } from './work-dir-layout';

/**
 * Read-only (its image locks still forbid writers: while a point is mounted,
 * a writer or a merge on any file of its chain fails instead of changing
 * what we read), persistent, --shared=8 because nbdfuse opens several
 * connections (multi-conn). A Unix socket in the work dir: no port to lease,
 * and nothing outside the host can reach it.
 */
export function qemuNbdArgs(imageFile: string, socketPath: string, pidFile?: string): string[] {
  return buildSocketExportArgs({ file: imageFile, format: 'qcow2', socket: socketPath, exportName: EXPORT_NAME, shared: 8 }, pidFile);
}

/** A chunk point's index is served by the chunk store's own server instead (src/repositories/chunks/point-server.ts). */
function exportServer(imageFile: string, socketPath: string, pidFile: string): { binary?: string; args: string[] } {
  return isChunkPointFile(imageFile) ? socketExportLaunch({ file: imageFile, format: 'qcow2', socket: socketPath, exportName: EXPORT_NAME, shared: 8 }, pidFile) : { args: qemuNbdArgs(imageFile, socketPath, pidFile) };
}

export async function startReadOnlyExport(imageFile: string, workDir: string, timeoutMs: number): Promise<HelperChild> {
  const socket = workDirLayout.socket(workDir);
  const pidFile = workDirLayout.qemuNbdPidFile(workDir);
  const logFile = workDirLayout.qemuNbdLog(workDir);
  try {
    const handle = await launchQemuNbd({ ...exportServer(imageFile, socket, pidFile), pidFile, listen: { socket }, logFile, detached: true }, { readyTimeoutMs: timeoutMs });
    return new HelperChild('qemu-nbd', handle, logFile);
  } catch (error) {
    if (!(error instanceof QemuNbdStartError)) throw error;
    throw startFailureMessage('qemu-nbd', error.outcome === 'timeout' ? 'timeout' : error.exit, error.stderr.trim(), timeoutMs);
  }
}
