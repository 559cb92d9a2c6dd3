import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import execa from 'execa';
import { MAX_SOCKET_PATH } from './socket-path';

/** The limit the hub and the agent check a socket's path against: the strictest of the servers they run. */
describe('MAX_SOCKET_PATH', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-socket-path-'));
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'd.qcow2'), '1M']);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A socket path of `length` bytes in `dir`. */
  const socketOf = (length: number) => join(dir, 's'.repeat(length - dir.length - 1));

  it('qemu-nbd serves on a socket path of exactly that many bytes; nbdkit (the instant recovery proxy) refuses one byte more', async () => {
    const socket = socketOf(MAX_SOCKET_PATH);
    const server = execa('qemu-nbd', ['-r', '-f', 'qcow2', '-k', socket, '-x', 'd', join(dir, 'd.qcow2')]);
    try {
      const size = () => execa('nbdinfo', ['--size', `nbd+unix:///d?socket=${socket}`], { reject: false });
      let info = await size();
      // until qemu-nbd listens
      for (let i = 0; i < 50 && info.exitCode !== 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        info = await size();
      }
      expect(info.stdout.trim()).toBe(String(1024 * 1024));
    } finally {
      server.kill('SIGTERM');
      await server.catch(() => undefined);
    }
    const longer = await execa('nbdkit', ['-f', '-U', socketOf(MAX_SOCKET_PATH + 1), 'memory', '1M'], { reject: false, timeout: 10_000 });
    expect(longer.exitCode).toBe(1);
    expect(longer.stderr).toContain(`path too long: length ${MAX_SOCKET_PATH + 1} > max ${MAX_SOCKET_PATH} bytes`);
  });
});
