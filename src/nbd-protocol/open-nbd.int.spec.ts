import { randomBytes } from 'node:crypto';
import { freePort } from '../../test/support/processes';
import { NbdServer, ReadableDisk, WritableDisk } from './nbd-server';
import { openNbd } from './open-nbd';
import { pskStartTls } from './tls-psk';

/**
 * A backup's agent is handed its export's port as the export starts: its connection waits for a server that is not
 * listening yet, and only that long, and no longer than its job.
 */
describe('openNbd to a server still starting', () => {
  const disk: ReadableDisk = { size: 1024 * 1024, read: async (_offset, length, into) => into ?? Buffer.alloc(length) };
  const address = (port: number) => ({ transport: 'tcp' as const, host: '127.0.0.1', port, exportName: 'target' });

  it('connects once the server listens, when told to wait for it', async () => {
    const port = await freePort();
    let server: NbdServer | undefined;
    const late = new Promise<void>((resolve) => setTimeout(() => void NbdServer.listenTcp('127.0.0.1', port, { exportName: 'target', disk }).then((s) => resolve(void (server = s))), 200));
    try {
      const client = await openNbd(address(port), { refusedRetryMs: 5_000 });
      expect(client.size).toBe(disk.size);
      await client.close();
    } finally {
      await late;
      await server?.close();
    }
  });

  it('fails at once on a refused connection unless told to wait, and once the wait is over', async () => {
    const port = await freePort();
    await expect(openNbd(address(port))).rejects.toThrow(/ECONNREFUSED/);
    const began = performance.now();
    await expect(openNbd(address(port), { refusedRetryMs: 100 })).rejects.toThrow(/ECONNREFUSED/);
    expect(performance.now() - began).toBeGreaterThanOrEqual(100);
  });

  it('stops waiting when its signal ends (the job was cancelled)', async () => {
    const port = await freePort();
    const abort = new AbortController();
    setTimeout(() => abort.abort(new Error('cancelled')), 100);
    await expect(openNbd(address(port), { refusedRetryMs: 60_000, signal: abort.signal })).rejects.toThrow('cancelled');
  });

  it('gives nothing to a process that took the port first without the export’s key: the handshake fails and no write lands', async () => {
    const port = await freePort();
    const writes: number[] = [];
    const squatter: WritableDisk = { ...disk, write: async (offset) => void writes.push(offset), writeZeroes: async () => undefined, flush: async () => undefined };
    const server = await NbdServer.listenTcp('127.0.0.1', port, { exportName: 'target', writable: true, disk: squatter, tls: { identity: 'sendense', key: randomBytes(32) } });
    try {
      const key = { identity: 'sendense', key: randomBytes(32).toString('hex') };
      await expect(openNbd(address(port), { startTls: pskStartTls(key), refusedRetryMs: 5_000 })).rejects.toThrow(/TLS with the NBD server failed/);
      expect(writes).toEqual([]);
    } finally {
      await server.close();
    }
  });
});
