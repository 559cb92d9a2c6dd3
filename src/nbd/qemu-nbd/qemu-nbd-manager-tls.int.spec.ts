import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQcow2, MiB } from '../../../test/fixtures/qemu-nbd-images';
import { killAllMentioning } from '../../../test/fixtures/qemu-nbd-processes';
import { NbdClient, NbdPsk, openNbd, pskStartTls } from '../../nbd-protocol';
import { QemuNbdManager } from './qemu-nbd-manager';
import type { ManagedExportSpec } from './qemu-nbd.types';

// Ports 10960-10969 belong to this file.
describe('QemuNbdManager: exports that require TLS with their own pre-shared key', () => {
  let dir: string;
  let runDir: string;
  let manager: QemuNbdManager;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-qemu-nbd-tls-'));
    runDir = join(dir, 'run');
    manager = new QemuNbdManager({ runDir, onExit: () => undefined });
  });

  afterAll(async () => {
    await manager.stopAll();
    const leftovers = await killAllMentioning(dir);
    rmSync(dir, { recursive: true, force: true });
    expect(leftovers).toEqual([]);
  });

  async function start(port: number): Promise<{ spec: ManagedExportSpec; psk: NbdPsk }> {
    const file = await createQcow2(join(dir, `disk-${port}.qcow2`), 16 * MiB);
    const spec: ManagedExportSpec = { leaseId: randomUUID(), port, file, format: 'qcow2', readOnly: false, exportName: `disk-${port}`, tls: { bind: '127.0.0.1' } };
    const running = await manager.start(spec);
    expect(running.psk).toEqual({ identity: 'sendense', key: expect.stringMatching(/^[0-9a-f]{64}$/) });
    return { spec, psk: running.psk! };
  }

  const open = (port: number, exportName: string, psk?: NbdPsk) =>
    openNbd({ transport: 'tcp', host: '127.0.0.1', port, exportName }, psk ? { startTls: pskStartTls(psk), handshakeTimeoutMs: 5_000 } : { handshakeTimeoutMs: 5_000 });

  it('serves reads and writes to a client with its key, encrypted: the data never crosses the socket in the clear', async () => {
    const { spec, psk } = await start(10960);
    // A relay between client and export that keeps every byte that passes it, both ways.
    const wire: Buffer[] = [];
    const relay = createServer((inbound) => {
      const outbound = connect(10960, '127.0.0.1');
      inbound.on('data', (b: Buffer) => wire.push(Buffer.from(b)));
      outbound.on('data', (b: Buffer) => wire.push(Buffer.from(b)));
      inbound.pipe(outbound).pipe(inbound);
      inbound.on('error', () => outbound.destroy());
      outbound.on('error', () => inbound.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const client = await open((relay.address() as AddressInfo).port, spec.exportName, psk);
    const marker = Buffer.concat([Buffer.from('sendense-clear-text-marker:'), randomBytes(64 * 1024 - 27)]);
    await client.write(1 * MiB, marker);
    await client.flush();
    expect((await client.read(1 * MiB, marker.length)).equals(marker)).toBe(true);
    await client.close();
    relay.close();
    const seen = Buffer.concat(wire);
    expect(seen.length).toBeGreaterThan(2 * marker.length);
    expect(seen.includes(marker.subarray(0, 27))).toBe(false);
    expect(seen.includes(marker.subarray(1000, 1064))).toBe(false);
    expect(seen.includes(Buffer.from(spec.exportName))).toBe(false);
    // The key lives in the run dir, readable by the hub alone; qemu-nbd names the directory, never the key.
    const keyDir = join(runDir, `qemu-nbd-${spec.leaseId}.psk`);
    expect(statSync(keyDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(keyDir, 'keys.psk')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(keyDir, 'keys.psk'), 'utf8')).toBe(`sendense:${psk.key}\n`);
    // A fixed public group, so qemu-nbd does not generate DH parameters at every start.
    expect(readFileSync(join(keyDir, 'dh-params.pem'), 'utf8')).toMatch(/^-----BEGIN DH PARAMETERS-----\n/);
    expect(manager.list()[0].args.join(' ')).not.toContain(psk.key);
    await manager.stop(spec.leaseId);
    expect(existsSync(keyDir)).toBe(false);
  });

  it('refuses a client without TLS before it may name an export', async () => {
    const { spec } = await start(10961);
    await expect(open(10961, spec.exportName)).rejects.toThrow(/NBD_REP_ERR_TLS_REQD/);
    await manager.stop(spec.leaseId);
  });

  it("refuses a wrong key, and another export's key", async () => {
    const first = await start(10962);
    const second = await start(10963);
    await expect(open(10962, first.spec.exportName, { identity: 'sendense', key: randomBytes(32).toString('hex') })).rejects.toThrow(/TLS with the NBD server failed/);
    await expect(open(10962, first.spec.exportName, second.psk)).rejects.toThrow(/TLS with the NBD server failed/);
    // ...while each key still opens its own export.
    const own: NbdClient = await open(10963, second.spec.exportName, second.psk);
    expect(own.size).toBe(16 * MiB);
    await own.close();
    await manager.stop(first.spec.leaseId);
    await manager.stop(second.spec.leaseId);
  });

  it('a stopped export is gone with its key: the port answers nobody', async () => {
    const { spec, psk } = await start(10964);
    await manager.stop(spec.leaseId);
    await expect(open(10964, spec.exportName, psk)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('a new manager (the hub restarted) adopts a TLS export and reads its key back', async () => {
    const { spec, psk } = await start(10965);
    const record = JSON.parse(readFileSync(join(runDir, `qemu-nbd-${spec.leaseId}.json`), 'utf8'));
    // A second manager on the same run dir stands for the next hub process (the first one never stops it).
    const successor = new QemuNbdManager({ runDir, onExit: () => undefined });
    expect(successor.adopt(record)).toBe(true);
    expect(successor.list()[0].psk).toEqual(psk);
    const client = await open(10965, spec.exportName, psk);
    await client.close();
    await successor.stop(spec.leaseId);
  });
});
