import type { QemuNbdLaunch } from '../../../qemu/qemu-nbd-launcher';
import { buildChunkNbdArgs, ChunkNbdSpec } from './chunk-nbd-args';

/**
 * What spawnQemuNbd and waitUntilServing need to run the chunk store's NBD process in qemu-nbd's place: node itself
 * as the binary, the program as its first argument; the launcher gives node its own environment (NODE_SERVER_ENV).
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
