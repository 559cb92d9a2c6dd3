import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { MiB, makeTempDir, removeTempDir } from '../../test/fixtures/qcow2/chain-builder';
import { runProcess } from '../process/run-process';
import { retryUnclockedPbkdf } from '../../test/support/qemu-pbkdf';
import { imageArgs, imageKeys, readKeyFile } from './image-keys';
import { KEY_SLOT_ITERATIONS, MASTER_KEY_DIGEST_ITERATIONS } from './luks-qcow2';
import { check, createFull, createOverlay, info } from './qemu-img';

/** What every release before this file wrote: qemu-img create with these options (kept here, as the files are kept). */
const QEMU_LUKS_OPTIONS = 'encrypt.format=luks,encrypt.key-secret=old,encrypt.iter-time=10';

describe('encrypted qcow2 files written by the hub (real qemu-img, qemu-io)', () => {
  let dir: string;
  let root: string;
  let keyFile: string;
  beforeEach(async () => {
    dir = await makeTempDir('luks-qcow2');
    root = join(dir, 'repo');
    await fs.mkdir(root);
    keyFile = join(dir, 'repo.key');
    await fs.writeFile(keyFile, `${randomBytes(32).toString('hex')}\n`);
    imageKeys.register({ root, name: 'repo', keyFile, fingerprint: readKeyFile(keyFile).fingerprint });
  });
  afterEach(async () => {
    imageKeys.unregister(root);
    await removeTempDir(dir);
  });

  const qemuIo = async (file: string, ...commands: string[]) => {
    const { stdout } = await runProcess('qemu-io', [...imageArgs(file, imageKeys.keyForImage(file)), ...commands.flatMap((c) => ['-c', c])]);
    return stdout;
  };
  const qemuImg = (...args: string[]) => retryUnclockedPbkdf(() => runProcess('qemu-img', args));
  const luksOf = async (file: string) => {
    const { stdout } = await qemuImg('info', '--output=json', ...imageArgs(file, imageKeys.keyForImage(file)));
    return (JSON.parse(stdout) as { 'format-specific': { data: { encrypt: Record<string, unknown> } } })['format-specific'].data.encrypt;
  };

  it('writes a LUKS qcow2 that qemu opens with the key, checks clean, keeps no plaintext and refuses another key', async () => {
    const file = join(root, 'full.qcow2');
    await createFull(file, 64 * MiB);
    expect(await info(file)).toMatchObject({ format: 'qcow2', virtualSize: 64 * MiB, encrypted: true });
    const luks = await luksOf(file);
    expect(luks).toMatchObject({ format: 'luks', 'cipher-alg': 'aes-256', 'cipher-mode': 'xts', 'ivgen-alg': 'plain64', 'hash-alg': 'sha256' });
    const slots = luks['slots'] as { active: boolean; iters?: number; stripes?: number }[];
    expect(slots.map((s) => s.active)).toEqual([true, false, false, false, false, false, false, false]);
    expect(slots[0]).toMatchObject({ iters: KEY_SLOT_ITERATIONS, stripes: 4000 });
    expect(luks['master-key-iters']).toBe(MASTER_KEY_DIGEST_ITERATIONS);

    await qemuIo(file, 'write -P 0x5a 1M 2M');
    expect(await qemuIo(file, 'read -P 0x5a 1M 2M', 'read -P 0 0 1M', 'read -P 0 3M 61M')).not.toMatch(/Pattern verification failed/);
    expect(await check(file)).toMatchObject({ ok: true, corruptions: 0, leaks: 0 });
    expect((await fs.readFile(file)).includes(Buffer.alloc(4096, 0x5a))).toBe(false);

    const otherKey = join(dir, 'other.key');
    await fs.writeFile(otherKey, randomBytes(32).toString('hex'));
    await expect(runProcess('qemu-io', ['--object', `secret,id=k,file=${otherKey}`, '--image-opts', `driver=qcow2,file.filename=${file},encrypt.key-secret=k`, '-c', 'read 0 512'])).rejects.toThrow(/Invalid password, cannot unlock any keyslot/);
  });

  it('lays a file out as qemu-img create does: same size, same metadata, only the LUKS bytes differ', async () => {
    for (const [virtualSize, clusterSize] of [[64 * MiB, undefined], [5 * 1024 * 1024 * MiB, undefined], [256 * MiB, 4096], [MiB + 1000, undefined]] as const) {
      const ours = join(root, `ours-${virtualSize}-${clusterSize ?? 'default'}.qcow2`);
      const qemus = join(root, `qemu-${virtualSize}-${clusterSize ?? 'default'}.qcow2`);
      await createFull(ours, virtualSize, { clusterSize });
      await qemuImg('create', '-q', '--object', `secret,id=old,file=${keyFile}`, '-f', 'qcow2', '-o', [QEMU_LUKS_OPTIONS, ...(clusterSize ? [`cluster_size=${clusterSize}`] : [])].join(','), qemus, String(virtualSize));
      const [a, b] = [await fs.readFile(ours), await fs.readFile(qemus)];
      expect(a.length).toBe(b.length);
      // the header up to its extensions, and every cluster before the LUKS area (refcount table and blocks, L1)
      const luksOffset = Number(b.readBigUInt64BE(112 + 8));
      expect(Number(a.readBigUInt64BE(112 + 8))).toBe(luksOffset);
      expect(a.subarray(0, 104)).toEqual(b.subarray(0, 104));
      const cluster = 2 ** b.readUInt32BE(20);
      expect(a.subarray(cluster, luksOffset)).toEqual(b.subarray(cluster, luksOffset));
      expect(await check(ours)).toMatchObject({ ok: true, corruptions: 0, leaks: 0 });
    }
  });

  it('opens chains that mix files qemu-img wrote (older releases) and files the hub writes now, in either order', async () => {
    const old = (name: string, backing?: string) =>
      qemuImg('create', '-q', '--object', `secret,id=old,file=${keyFile}`, '-f', 'qcow2', '-o', QEMU_LUKS_OPTIONS, ...(backing ? ['-u', '-b', backing, '-F', 'qcow2'] : []), join(root, name), String(16 * MiB));
    await old('old-base.qcow2');
    await createOverlay(join(root, 'new-1.qcow2'), 'old-base.qcow2');
    await old('old-2.qcow2', 'new-1.qcow2');
    await createOverlay(join(root, 'new-3.qcow2'), 'old-2.qcow2');
    const chain = ['old-base.qcow2', 'new-1.qcow2', 'old-2.qcow2', 'new-3.qcow2'];
    for (const [i, name] of chain.entries()) await qemuIo(join(root, name), `write -P ${0x10 + i} ${i}M 1M`);
    const top = join(root, 'new-3.qcow2');
    expect(imageKeys.keyForImage(top)?.encryptedLayers).toEqual([true, true, true, true]);
    const out = await qemuIo(top, ...chain.map((_, i) => `read -P ${0x10 + i} ${i}M 1M`), 'read -P 0 4M 12M');
    expect(out).not.toMatch(/Pattern verification failed/);
    expect(out.match(/^read /gm)).toHaveLength(chain.length + 1);
    expect((await info(top)).virtualSize).toBe(16 * MiB);
  });
});
