import { afterAll, afterEach, beforeAll, expect } from '@jest/globals';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ChildProcessHandle, terminateProcess } from '../../src/process/child-process';
import { QemuNbdLaunch, spawnQemuNbd } from '../../src/qemu/qemu-nbd-launcher';
import { ChunkNbdSpec, CHUNK_NBD_MAIN } from '../../src/repositories/chunks/chunk-nbd/chunk-nbd-args';
import { chunkNbdLaunch } from '../../src/repositories/chunks/chunk-nbd/launch';
import { makeTempDir, removeTempDir } from '../fixtures/qcow2/chain-builder';

/**
 * chunk-nbd processes (the program `npm run build` compiled) run as the hub runs them, in a temp dir of the suite's:
 * every test stops what it started, and one that left a process running fails and has it stopped.
 */
export function chunkNbdProcesses(prefix: string): {
  path: (name: string) => string;
  spawn: (spec: ChunkNbdSpec) => { handle: ChildProcessHandle; launch: QemuNbdLaunch };
  running: Set<ChildProcessHandle>;
} {
  let dir = '';
  let count = 0;
  const running = new Set<ChildProcessHandle>();
  beforeAll(async () => {
    if (!existsSync(CHUNK_NBD_MAIN)) throw new Error(`${CHUNK_NBD_MAIN} is missing: run npm run build`);
    dir = await makeTempDir(prefix);
  });
  afterEach(async () => {
    const left = [...running].map((handle) => handle.pid);
    await Promise.all([...running].map((handle) => terminateProcess(handle, 5_000, 'chunk-nbd')));
    expect(left).toEqual([]);
  });
  afterAll(async () => removeTempDir(dir));
  const path = (name: string) => join(dir, name);
  const spawn = (spec: ChunkNbdSpec) => {
    const name = `chunk-nbd-${++count}`;
    const launch = chunkNbdLaunch(spec, { pidFile: path(`${name}.pid`), logFile: path(`${name}.log`) }, false);
    const handle = spawnQemuNbd(launch);
    running.add(handle);
    void handle.exited.then(() => running.delete(handle));
    return { handle, launch };
  };
  return { path, spawn, running };
}
