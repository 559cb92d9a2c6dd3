import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { supportsDirectIo } from './qemu-nbd-args';

describe('supportsDirectIo', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'sendense-direct-io-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is true for a file on a filesystem that takes O_DIRECT (ext4 here)', () => {
    const file = join(dir, 'image');
    writeFileSync(file, Buffer.alloc(4096));
    expect(supportsDirectIo(file)).toBe(true);
  });

  it('is false for a file it cannot open, leaving the error to qemu-nbd', () => {
    expect(supportsDirectIo(join(dir, 'missing'))).toBe(false);
  });
});
