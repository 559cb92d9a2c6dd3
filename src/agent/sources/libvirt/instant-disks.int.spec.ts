import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdServer } from '../../../nbd-protocol/nbd-server';
import { readCmdline } from '../../../process/proc';
import { runProcess } from '../../../process/run-process';
import { freePort } from '../../../../test/support/processes';
import { MAX_SOCKET_PATH } from '../../../process/socket-path';
import { shortSocketDir, startInstantDisks, stopInstantDisks } from './instant-disks';

const MiB = 1024 * 1024;

/**
 * The local proxies of an instant recovery: real nbdkit daemons reading a real TLS-PSK NBD export (the hub's own
 * NBD server, serving a disk from memory), and qemu-img reading through the overlay they back.
 */
describe('instant disks: proxies of the hub export on local Unix sockets', () => {
  let base: string;
  let server: NbdServer;
  let port: number;
  const data = randomBytes(4 * MiB);
  const psk = { identity: 'sendense', key: randomBytes(32).toString('hex') };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'sendense-instant-disks-'));
    port = await freePort();
    server = await NbdServer.listenTcp('127.0.0.1', port, { exportName: 'rp', tls: { identity: psk.identity, key: Buffer.from(psk.key, 'hex') }, disk: { size: data.length, read: async (offset, length) => Buffer.from(data.subarray(offset, offset + length)) } });
  });
  afterAll(async () => {
    await server.close();
    rmSync(base, { recursive: true, force: true });
  });

  it('serves a disk from a proxy dir too deep for a socket path: the socket goes to a short dir of its own, and both go when stopped', async () => {
    // an agent dir far down a tree: <dir>/vda.sock would not fit in a socket's path
    const dir = join(base, 'a-long-agent-directory-of-an-operator'.repeat(2), 'libvirt', `instant-${'0'.repeat(36)}`);
    mkdirSync(dir, { recursive: true });
    expect(Buffer.byteLength(join(dir, 'vda.sock'))).toBeGreaterThan(MAX_SOCKET_PATH);
    const warnings: string[] = [];
    const [disk] = await startInstantDisks(dir, [{ diskId: 'vda', virtualSize: data.length, digests: false, nbd: { port, exportName: 'rp', psk } }], '127.0.0.1', (_level, message) => warnings.push(message));
    try {
      expect(disk.socket.startsWith(`${shortSocketDir(dir)}/`)).toBe(true);
      expect(Buffer.byteLength(disk.socket)).toBeLessThanOrEqual(MAX_SOCKET_PATH);
      expect(readCmdline(disk.proxyPid)?.[0]).toMatch(/nbdkit$/);
      const raw = join(base, 'disk.raw');
      writeFileSync(raw, data);
      // the overlay reads through the proxy: the hub's bytes
      await runProcess('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', disk.overlay, raw]);
      expect(warnings).toEqual([]);
    } finally {
      await stopInstantDisks(dir, [disk.proxyPid]);
    }
    expect(readCmdline(disk.proxyPid) ?? []).toEqual([]);
    expect({ dir: existsSync(dir), sockets: existsSync(shortSocketDir(dir)) }).toEqual({ dir: false, sockets: false });
  });

  it('keeps the socket beside the overlay when its path fits', async () => {
    const dir = join(base, 'short');
    const [disk] = await startInstantDisks(dir, [{ diskId: 'vdb', virtualSize: data.length, digests: false, nbd: { port, exportName: 'rp', psk } }], '127.0.0.1', () => undefined);
    try {
      expect(disk.socket).toBe(join(dir, 'vdb.sock'));
      expect(existsSync(shortSocketDir(dir))).toBe(false);
    } finally {
      await stopInstantDisks(dir, [disk.proxyPid]);
    }
    expect(existsSync(dir)).toBe(false);
  });

  it('stops a proxy the journal never named (an agent killed while the next disk was set up): it is found by the files it serves from', async () => {
    const dir = join(base, 'unnamed');
    const [disk] = await startInstantDisks(dir, [{ diskId: 'vdc', virtualSize: data.length, digests: false, nbd: { port, exportName: 'rp', psk } }], '127.0.0.1', () => undefined);
    expect(readCmdline(disk.proxyPid)?.[0]).toMatch(/nbdkit$/);
    await stopInstantDisks(dir, []);
    expect(readCmdline(disk.proxyPid) ?? []).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });
});
