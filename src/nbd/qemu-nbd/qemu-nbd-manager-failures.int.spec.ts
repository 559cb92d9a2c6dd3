import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQcow2, MiB } from '../../../test/fixtures/qemu-nbd-images';
import { isRunning, killAllMentioning, nbdinfoJson, pidsMentioning } from '../../../test/fixtures/qemu-nbd-processes';
import { QemuNbdManager } from './qemu-nbd-manager';
import type { QemuNbdExit, QemuNbdExportSpec } from './qemu-nbd.types';

// Ports 10920-10939 belong to this file.
describe('QemuNbdManager start and stop failures', () => {
  let dir: string;
  let runDir: string;
  let manager: QemuNbdManager;
  const exits: QemuNbdExit[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-qemu-nbd-fail-'));
    runDir = join(dir, 'run');
    manager = new QemuNbdManager({ runDir, onExit: (exit) => exits.push(exit) });
  });

  afterAll(async () => {
    await manager.stopAll();
    const leftovers = await killAllMentioning(dir);
    rmSync(dir, { recursive: true, force: true });
    expect(leftovers).toEqual([]);
  });

  function spec(port: number, file: string, patch: Partial<QemuNbdExportSpec> = {}): QemuNbdExportSpec {
    return { leaseId: randomUUID(), port, file, format: 'qcow2', readOnly: false, exportName: 'disk', ...patch };
  }

  function filesOf(leaseId: string): string[] {
    return readdirSync(runDir).filter((name) => name.includes(leaseId));
  }

  it('rejects an image another writer holds, with the lock message, and leaves nothing behind', async () => {
    const file = await createQcow2(join(dir, 'locked.qcow2'), 16 * MiB);
    const holder = spec(10920, file);
    await manager.start(holder);
    const intruder = spec(10921, file);
    await expect(manager.start(intruder)).rejects.toThrow(/Failed to get "write" lock/);
    expect(await pidsMentioning(dir)).toEqual([manager.list()[0].pid]);
    expect(filesOf(intruder.leaseId)).toEqual([]);
    expect(manager.list().map((e) => e.leaseId)).toEqual([holder.leaseId]);
    expect((await nbdinfoJson('nbd://127.0.0.1:10920/disk'))['export-size']).toBe(16 * MiB);
    expect(exits).toEqual([]);
    await manager.stop(holder.leaseId);
  });

  it('rejects a missing image with qemu-nbd\'s message', async () => {
    const s = spec(10922, join(dir, 'no-such.qcow2'));
    await expect(manager.start(s)).rejects.toThrow(/no-such\.qcow2.*No such file or directory/s);
    expect(await pidsMentioning(dir)).toEqual([]);
    expect(filesOf(s.leaseId)).toEqual([]);
  });

  it('rejects a port someone else listens on, although that port is in LISTEN state', async () => {
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(10923, '127.0.0.1', resolve));
    try {
      const s = spec(10923, await createQcow2(join(dir, 'port.qcow2'), 16 * MiB));
      await expect(manager.start(s)).rejects.toThrow(/Address already in use/);
      expect(await pidsMentioning(dir)).toEqual([]);
      expect(filesOf(s.leaseId)).toEqual([]);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it('rejects a binary that cannot be run', async () => {
    const broken = new QemuNbdManager({ runDir, binary: join(dir, 'missing-qemu-nbd'), onExit: (exit) => exits.push(exit) });
    const s = spec(10924, join(dir, 'any.qcow2'));
    await expect(broken.start(s)).rejects.toThrow(/cannot run .*ENOENT/);
    expect(filesOf(s.leaseId)).toEqual([]);
  });

  it('kills a server that never gets ready and reports its stderr', async () => {
    const pidFile = join(dir, 'hanging.pid');
    const binary = script('hanging-qemu-nbd', `#!/bin/sh\necho "hanging: opening the image takes forever" >&2\necho $$ > ${pidFile}\nexec sleep 60\n`);
    const slow = new QemuNbdManager({ runDir, binary, readyTimeoutMs: 300, onExit: (exit) => exits.push(exit) });
    const s = spec(10925, join(dir, 'any.qcow2'));
    const began = Date.now();
    await expect(slow.start(s)).rejects.toThrow(/not ready within 300 ms: hanging: opening the image takes forever/);
    expect(Date.now() - began).toBeLessThan(2_000);
    expect(isRunning(Number(readFileSync(pidFile, 'utf8')))).toBe(false);
    expect(slow.list()).toEqual([]);
    expect(filesOf(s.leaseId)).toEqual([]);
  });

  it('escalates to SIGKILL when a server ignores SIGTERM, and still reports the stop as expected', async () => {
    // Stands in for a qemu-nbd stuck while flushing: ready by our rules, deaf to SIGTERM.
    const binary = script(
      'deaf-qemu-nbd',
      `#!${process.execPath}
const net = require('node:net');
const fs = require('node:fs');
const args = process.argv.slice(2);
process.on('SIGTERM', () => console.error('deaf: ignoring SIGTERM'));
net.createServer().listen(Number(args[args.indexOf('-p') + 1]), '127.0.0.1', () => {
  fs.writeFileSync(args.find((a) => a.startsWith('--pid-file=')).slice('--pid-file='.length), process.pid + '\\n');
});
`,
    );
    const deaf = new QemuNbdManager({ runDir, binary, stopTimeoutMs: 300, onExit: (exit) => exits.push(exit) });
    const s = spec(10926, join(dir, 'any.qcow2'));
    const { pid } = await deaf.start(s);
    const began = Date.now();
    await deaf.stop(s.leaseId);
    expect(Date.now() - began).toBeGreaterThanOrEqual(300);
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(exits.find((e) => e.leaseId === s.leaseId)).toMatchObject({ pid, signal: 'SIGKILL', expected: true, stderrTail: expect.stringContaining('deaf: ignoring SIGTERM') });
    expect(filesOf(s.leaseId)).toEqual([]);
  });

  it("gives a chunk point's writer the time its commit takes: one that cannot run through another export's grace commits once it runs", async () => {
    const slow = new QemuNbdManager({ runDir, stopTimeoutMs: 300, onExit: (exit) => exits.push(exit) });
    mkdirSync(join(dir, 'repo', 'chunks'), { recursive: true });
    const file = join(dir, 'repo', 'chunks', 'points', 'vm1', 'rp-1', 'disk0.idx');
    const s = spec(10928, file, { format: 'chunks', create: { size: MiB, base: null } });
    const { pid } = await slow.start(s);
    // a commit on a slow disk, as long as a stopped process makes it: SIGTERM waits while the writer cannot run
    process.kill(pid, 'SIGSTOP');
    const stopping = slow.stop(s.leaseId);
    await new Promise((r) => setTimeout(r, 1_000));
    // gone already when it was given only the 300 ms (SIGKILL): the exit below says so
    if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGCONT');
    await stopping;
    expect(exits.find((e) => e.leaseId === s.leaseId)).toMatchObject({ pid, code: 0, signal: null, expected: true });
    expect(existsSync(file)).toBe(true);
    expect(filesOf(s.leaseId)).toEqual([]);
  });

  it('rejects start() when stop() is called while it is still starting', async () => {
    const binary = script('sleepy-qemu-nbd', '#!/bin/sh\nexec sleep 60\n');
    const sleepy = new QemuNbdManager({ runDir, binary, onExit: (exit) => exits.push(exit) });
    const s = spec(10927, join(dir, 'any.qcow2'));
    const starting = sleepy.start(s); // spawns synchronously, so stop() below finds it
    await sleepy.stop(s.leaseId);
    await expect(starting).rejects.toThrow(/stopped before it was ready/);
    expect(exits.some((e) => e.leaseId === s.leaseId)).toBe(false);
  });

  function script(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    chmodSync(path, 0o755);
    return path;
  }
});
