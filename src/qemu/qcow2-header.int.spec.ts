import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../process/run-process';
import { info, type ImageInfo } from './qemu-img';
import { readQcow2Header } from './qcow2-header';

/** Every header read is compared with what qemu-img info reads of the same real file. */
describe('readQcow2Header against qemu-img info', () => {
  let dir: string;
  const path = (name: string) => join(dir, name);
  const qemuImg = (...args: string[]) => runProcess('qemu-img', args);
  const create = (name: string, options: string[], size?: string) => qemuImg('create', '-q', '-f', 'qcow2', ...options, path(name), ...(size ? [size] : []));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-qcow2-header-'));
    await create('base.qcow2', ['-o', 'cluster_size=4096'], '64M');
    await create('relative.qcow2', ['-F', 'qcow2', '-b', 'base.qcow2']);
    await create('absolute.qcow2', ['-F', 'qcow2', '-b', path('base.qcow2')]);
    await create('unsized-format.qcow2', ['-u', '-b', 'relative.qcow2', '-F', 'raw'], '64M');
    // qemu-img create always records a format now; an older one did not: the extension is taken out below
    await create('no-format.qcow2', ['-F', 'qcow2', '-b', 'base.qcow2']);
    await create('bitmap.qcow2', ['-F', 'qcow2', '-b', 'base.qcow2']);
    await qemuImg('bitmap', '--add', '-f', 'qcow2', path('bitmap.qcow2'), 'b0');
    await create('corrupt.qcow2', [], '128M');
    await create('v2.qcow2', ['-o', 'compat=0.10'], '64M');
    await create('extended-l2.qcow2', ['-o', 'extended_l2=on'], '64M');
    await create('external-data.qcow2', ['-o', `data_file=${path('external-data.raw')}`], '64M');
  });
  afterAll(() => process.env.KEEP || rmSync(dir, { recursive: true, force: true }));

  /** Rewrites bytes of the file's first cluster in place. */
  function patch(name: string, edit: (header: Buffer) => void): void {
    const fd = openSync(path(name), 'r+');
    const header = Buffer.alloc(4096);
    readSync(fd, header, 0, header.length, 0);
    edit(header);
    writeSync(fd, header, 0, header.length, 0);
    closeSync(fd);
  }

  /** What qemu-img info says of the header, with the file's length (which the header read answers too). */
  const asQemu = ({ filename, virtualSize, backingFilename, backingFormat, corrupt }: ImageInfo) => ({ virtualSize, backingFilename, backingFormat, corrupt, fileBytes: statSync(filename).size });

  it.each(['base.qcow2', 'relative.qcow2', 'absolute.qcow2', 'unsized-format.qcow2', 'bitmap.qcow2'])('reads %s as qemu-img does', async (name) => {
    const qemu = (await info(path(name))) as ImageInfo;
    expect(await readQcow2Header(path(name))).toEqual(asQemu(qemu));
  });

  it('reads a backing file recorded without its format, and the corrupt flag, as qemu-img does', async () => {
    // the backing format extension's type overwritten with an unknown one, which qemu skips
    patch('no-format.qcow2', (h) => {
      const at = h.indexOf(Buffer.from([0xe2, 0x79, 0x2a, 0xca]), 104);
      expect(at).toBeGreaterThan(0);
      h.writeUInt32BE(0x12345678, at);
    });
    // the incompatible feature bit 1: qemu found its metadata inconsistent
    patch('corrupt.qcow2', (h) => h.writeBigUInt64BE(h.readBigUInt64BE(72) | 2n, 72));
    for (const name of ['no-format.qcow2', 'corrupt.qcow2']) {
      const qemu = (await info(path(name))) as ImageInfo;
      expect({ name, ...(await readQcow2Header(path(name)))! }).toEqual({ name, ...asQemu(qemu) });
    }
    expect((await readQcow2Header(path('no-format.qcow2')))!.backingFormat).toBeNull();
    expect((await readQcow2Header(path('corrupt.qcow2')))!.corrupt).toBe(true);
  });

  it('leaves to qemu-img what it might read otherwise: v2, incompatible features, a header that does not parse', async () => {
    expect(await readQcow2Header(path('v2.qcow2'))).toBeNull();
    expect(await readQcow2Header(path('extended-l2.qcow2'))).toBeNull();
    expect(await readQcow2Header(path('external-data.qcow2'))).toBeNull();
    expect(await readQcow2Header(path('external-data.raw'))).toBeNull();
    await create('bad-extension.qcow2', [], '64M');
    // an extension whose length runs past the first cluster
    patch('bad-extension.qcow2', (h) => {
      const extensions = h.readUInt32BE(100);
      h.writeUInt32BE(0x12345678, extensions);
      h.writeUInt32BE(1 << 20, extensions + 4);
    });
    expect(await readQcow2Header(path('bad-extension.qcow2'))).toBeNull();
  });
});
