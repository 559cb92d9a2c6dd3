import { join } from 'node:path';
import { createImage, imagesEqual, MiB, qemuImg, qemuIo } from '../../test/fixtures/nbd/images';
import { isRunning, removeDir, serverPids, startQemuNbd, stopAllServers, tempDir } from '../../test/fixtures/nbd/servers';
import { nbdCopyCommand } from './nbd-copy.command';

jest.setTimeout(60_000);

let dir: string;
const pids: number[] = [];

beforeAll(() => {
  dir = tempDir('sendense-nbd-copy-cmd-');
});

afterAll(async () => {
  pids.push(...serverPids());
  await stopAllServers();
  for (const pid of pids) expect(isRunning(pid)).toBe(false);
  removeDir(dir);
});

function capture() {
  const out = { stdout: '', stderr: '' };
  return { out, io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t), signals: [], progressIntervalMs: 5 } };
}

describe('sendense nbd copy', () => {
  it('runs a full then an incremental copy between real exports, with progress on stderr and a JSON summary on stdout', async () => {
    const src = await createImage(join(dir, 'src.qcow2'), 'qcow2', 32 * MiB);
    await qemuIo(src, 'qcow2', ['write -P 0x61 0 4M', 'write -P 0x62 10M 2M']);
    await qemuImg(['bitmap', '--add', '--enable', src, 'nightly']);
    const t0 = await createImage(join(dir, 't0.qcow2'), 'qcow2', 32 * MiB);
    let source = await startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true, unix: true });
    let target = await startQemuNbd({ dir, file: t0, format: 'qcow2' });

    const full = capture();
    expect(await nbdCopyCommand([source.uri, target.uri, '--requests', '4', '--request-size', '256K'], full.io)).toBe(0);
    const summary = JSON.parse(full.out.stdout);
    expect(summary).toMatchObject({ source: source.uri, target: target.uri, mode: 'full', bytesWritten: 6 * MiB, bytesZeroed: 0, bytesPlanned: 6 * MiB });
    expect(full.out.stderr).toMatch(/full copy of 32\.0 MiB/);
    expect(full.out.stderr).toMatch(/progress 100\.0% 6\.0\/6\.0 MiB/);
    await source.stop();
    await target.stop();

    await qemuIo(src, 'qcow2', ['write -P 0x63 1M 64k', 'write -z 11M 64k']);
    const t1 = join(dir, 't1.qcow2');
    await createImage(t1, 'qcow2', 32 * MiB, t0);
    source = await startQemuNbd({ dir, file: src, format: 'qcow2', readOnly: true, bitmap: 'nightly' });
    target = await startQemuNbd({ dir, file: t1, format: 'qcow2', unix: true });

    const missing = capture();
    expect(await nbdCopyCommand([source.uri, target.uri, '--bitmap', 'weekly'], missing.io)).toBe(1);
    expect(missing.out.stderr).toMatch(/cannot open SRC .*bitmap "weekly" does not exist or is not exported/);

    const inc = capture();
    expect(await nbdCopyCommand([source.uri, target.uri, '--bitmap', 'nightly'], inc.io)).toBe(0);
    expect(JSON.parse(inc.out.stdout)).toMatchObject({ mode: 'incremental', bitmap: 'nightly', bytesWritten: 64 * 1024, bytesZeroed: 64 * 1024, dirtyBytes: 128 * 1024 });
    await source.stop();
    await target.stop();
    expect((await imagesEqual(src, 'qcow2', t1, 'qcow2')).equal).toBe(true);
  });
});
