import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPidFile, spawnQemuNbd } from './qemu-nbd-launcher';

describe('qemu-nbd launcher', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sendense-launcher-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("treats qemu-nbd's pid file as unwritten until it ends with a newline", () => {
    const pidFile = join(dir, 'qemu-nbd-lease-1.pid');
    writeFileSync(pidFile, '42');
    expect(readPidFile(pidFile)).toBeUndefined();
    writeFileSync(pidFile, '4242\n');
    expect(readPidFile(pidFile)).toBe(4242);
    expect(readPidFile(join(dir, 'missing.pid'))).toBeUndefined();
  });

  it('refuses a command line without the pid file it waits for', () => {
    expect(() => spawnQemuNbd({ args: ['-r', '/x.qcow2'], pidFile: join(dir, 'p'), listen: { port: 10809 }, logFile: join(dir, 'log'), detached: false })).toThrow(/--pid-file/);
  });
});
