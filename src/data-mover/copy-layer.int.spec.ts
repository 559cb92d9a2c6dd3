import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { createImage, imageMap, imagesEqual, MiB, qemuIo } from '../../test/fixtures/nbd/images';
import { isRunning, removeDir, serverPids, startQemuNbd, stopAllServers, tempDir } from '../../test/fixtures/nbd/servers';
import { freePort } from '../../test/support/processes';
import { BASE_ALLOCATION, QEMU_ALLOCATION_DEPTH } from '../nbd-protocol/constants';
import { NbdClient } from '../nbd-protocol/nbd-client';
import { openNbd } from '../nbd-protocol/open-nbd';
import { ChildProcessHandle, terminateProcess } from '../process/child-process';
import { buildQemuNbdArgs } from '../qemu/qemu-nbd-args';
import { launchQemuNbd } from '../qemu/qemu-nbd-launcher';
import { digestOf } from '../wire/block-digests';
import { copyDisk } from './copy-disk';

/**
 * copyDisk mode 'layer' from a hub's own read-only export (buildQemuNbdArgs, so with -A) of a restore
 * point's top file opened with its backing chain, into an overlay on a copy of that chain.
 */

jest.setTimeout(120_000);

const K = 1024;
const SIZE = 64 * MiB;
let dir: string;
const clients: NbdClient[] = [];
const hubExports: ChildProcessHandle[] = [];
const pids: number[] = [];
let exportsStarted = 0;

/** The hub's read-only export of `file`, started as the hub starts it. */
async function hubExport(file: string): Promise<string> {
  const port = await freePort();
  const tag = `${++exportsStarted}`;
  const pidFile = join(dir, `hub-${tag}.pid`);
  const args = buildQemuNbdArgs({ leaseId: `lease-${tag}`, port, file, format: 'qcow2', readOnly: true, exportName: 'rp' }, pidFile);
  hubExports.push(await launchQemuNbd({ args, pidFile, listen: { port }, logFile: join(dir, `hub-${tag}.log`), detached: false }, { readyTimeoutMs: 10_000 }));
  return `nbd://127.0.0.1:${port}/rp`;
}

async function open(uri: string, metaContexts: string[] = []): Promise<NbdClient> {
  const c = await openNbd(uri, { metaContexts });
  clients.push(c);
  return c;
}

/** Closes the connections, then every server: qemu-img may open the images only afterwards. */
async function stopEverything(): Promise<void> {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => c.destroy())));
  pids.push(...serverPids(), ...hubExports.map((h) => h.pid));
  await Promise.all(hubExports.splice(0).map((h) => terminateProcess(h, 1_000, 'qemu-nbd')));
  await stopAllServers();
}

beforeAll(() => {
  dir = tempDir('sendense-copy-layer-int-');
});

afterEach(stopEverything);

afterAll(() => {
  for (const pid of pids) expect(isRunning(pid)).toBe(false);
  removeDir(dir);
});

/** base: 0x11 at 0-4M, 0x22 at 8-12M; top over it: 0x33 at 1-2M, zeroes at 9-10M (over base data), 0x44 at 20-21M (over a hole). */
async function chain(prefix: string): Promise<{ base: string; top: string }> {
  const base = await createImage(join(dir, `${prefix}-base.qcow2`), 'qcow2', SIZE);
  await qemuIo(base, 'qcow2', ['write -P 0x11 0 4M', 'write -P 0x22 8M 4M']);
  const top = await createImage(join(dir, `${prefix}-top.qcow2`), 'qcow2', SIZE, base);
  await qemuIo(top, 'qcow2', ['write -P 0x33 1M 1M', 'write -z 9M 1M', 'write -P 0x44 20M 1M']);
  return { base, top };
}

describe('copyDisk layer', () => {
  it("copies exactly the top file's own clusters into an overlay on a copy of its backing file", async () => {
    const { base, top } = await chain('ovl');
    const targetBase = join(dir, 'ovl-tgt-base.qcow2');
    copyFileSync(base, targetBase);
    const tgt = await createImage(join(dir, 'ovl-tgt.qcow2'), 'qcow2', SIZE, targetBase);
    const source = await open(await hubExport(top), [QEMU_ALLOCATION_DEPTH, BASE_ALLOCATION]);
    const target = await open((await startQemuNbd({ dir, file: tgt, format: 'qcow2' })).uri);

    const summary = await copyDisk({ source, target, mode: 'layer', requests: 4, digests: true });
    expect(summary).toMatchObject({ mode: 'layer', dirtyBytes: 3 * MiB, bytesPlanned: 3 * MiB, bytesWritten: 2 * MiB, bytesRead: 2 * MiB, bytesZeroed: 1 * MiB });
    // the whole layer is hashed, its zeroes included, and nothing else
    expect(summary.digests!.bytes).toBe(3 * MiB);
    expect(summary.digests!.digestAt((1 * MiB) / (64 * K))).toEqual(digestOf(Buffer.alloc(64 * K, 0x33)));
    expect(summary.digests!.covers((9 * MiB) / (64 * K))).toBe(true);
    expect(summary.digests!.covers(0)).toBe(false);
    await stopEverything();

    expect((await imagesEqual(top, 'qcow2', tgt, 'qcow2')).equal).toBe(true);
    // the overlay holds the layer and nothing more; the zeroed range is a zero cluster masking the base's 0x22
    const own = (await imageMap(tgt, 'qcow2')).filter((m) => m.depth === 0);
    expect(own.map(({ start, length, data, zero }) => ({ start, length, data, zero }))).toEqual([
      { start: 1 * MiB, length: 1 * MiB, data: true, zero: false },
      { start: 9 * MiB, length: 1 * MiB, data: false, zero: true },
      { start: 20 * MiB, length: 1 * MiB, data: true, zero: false },
    ]);
  });

  it('copies the first point of a chain (no backing file) into a fresh standalone image', async () => {
    const { base } = await chain('full');
    const tgt = await createImage(join(dir, 'full-tgt.qcow2'), 'qcow2', SIZE);
    const source = await open(await hubExport(base), [QEMU_ALLOCATION_DEPTH, BASE_ALLOCATION]);
    const target = await open((await startQemuNbd({ dir, file: tgt, format: 'qcow2' })).uri);
    const summary = await copyDisk({ source, target, mode: 'layer' });
    expect(summary).toMatchObject({ dirtyBytes: 8 * MiB, bytesWritten: 8 * MiB, bytesZeroed: 0 });
    await stopEverything();
    expect((await imagesEqual(base, 'qcow2', tgt, 'qcow2')).equal).toBe(true);
  });

  it('refuses a source connection without qemu:allocation-depth, which an export without -A cannot offer', async () => {
    const { top } = await chain('refuse');
    const tgt = await createImage(join(dir, 'refuse-tgt.qcow2'), 'qcow2', SIZE);
    const target = await open((await startQemuNbd({ dir, file: tgt, format: 'qcow2' })).uri);
    const hub = await hubExport(top);
    await expect(copyDisk({ source: await open(hub, [BASE_ALLOCATION]), target, mode: 'layer' })).rejects.toThrow(
      /source connection has no meta context qemu:allocation-depth \(qemu-nbd needs -A\)/,
    );
    const withoutA = await startQemuNbd({ dir, file: top, format: 'qcow2', readOnly: true });
    await expect(open(withoutA.uri, [QEMU_ALLOCATION_DEPTH, BASE_ALLOCATION])).rejects.toThrow(/server does not offer meta context qemu:allocation-depth/);
  });
});
