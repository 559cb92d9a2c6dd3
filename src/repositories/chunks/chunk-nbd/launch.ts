import type { QemuNbdLaunch } from '../../../qemu/qemu-nbd-launcher';
import { buildChunkNbdArgs, ChunkNbdSpec } from './chunk-nbd-args';

/**
 * What spawnQemuNbd and waitUntilServing need to run the chunk store's NBD process in qemu-nbd's place: node itself
 * as the binary, the program as its first argument. The launcher's environment (LC_ALL, glibc's malloc tunables) is
 * harmless to node, whose heap is V8's own; the command line never holds a bare "-r", so node never gets
 * READ_ONLY_QEMU_NBD_ENV's huge pages.
 */
export function chunkNbdLaunch(spec: ChunkNbdSpec, files: { pidFile: string; logFile: string }, detached: boolean): QemuNbdLaunch {
  return {
    binary: process.execPath,
    args: buildChunkNbdArgs(spec, files.pidFile),
    pidFile: files.pidFile,
    listen: 'socket' in spec.listen ? { socket: spec.listen.socket } : { port: spec.listen.port },
    logFile: files.logFile,
    detached,
  };
}
