import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { compress } from 'zstd-napi';
import { DISK_SIZE_HEADER, EXTENTS_MEDIA_TYPE, frameHeader, ZSTD_CODEC } from '../../disk-images/image-extents';
import { restoreDiskCommand } from './disk-image-cli';

const BLOCK = 64 * 1024;

/**
 * `sendense restore disk` against a hub faked by a local HTTP server (the real hub's side is in
 * test/e2e/chunk-repository.e2e.spec.ts): what the CLI asks for, and what it makes of packed frames, good and bad.
 */
describe('sendense restore disk: packed frames', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sendense-restore-disk-'));
  const disk = Buffer.alloc(3 * BLOCK + 500);
  Buffer.from('log text that compresses\n'.repeat(3000)).copy(disk, 0, 0, BLOCK);
  disk.fill(0x5a, 2 * BLOCK, 3 * BLOCK);
  disk.fill(0x33, 3 * BLOCK);
  let server: Server;
  let answer: (req: IncomingMessage, res: ServerResponse) => void = () => undefined;
  let accepted: string | undefined;
  beforeAll(async () => {
    server = createServer((req, res) => {
      accepted = req.headers.accept;
      answer(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const packedAnswer = (frames: Buffer[]) => (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'Content-Type': `${EXTENTS_MEDIA_TYPE}; ${ZSTD_CODEC}`, [DISK_SIZE_HEADER]: String(disk.length) });
    res.end(Buffer.concat(frames));
  };
  const restore = async (output: string) => {
    const stderr = new PassThrough();
    const said: Buffer[] = [];
    stderr.on('data', (c: Buffer) => said.push(c));
    const env = { SENDENSE_HUB: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, SENDENSE_TOKEN: 't' };
    const code = await restoreDiskCommand(['rp-1', '--disk', 'disk0', '-o', output], env, { stdout: new PassThrough(), stderr, cwd: dir });
    return { code, stderr: Buffer.concat(said).toString() };
  };

  it('asks for the codec, and writes packed and plain frames as the disk, zeros where no frame is', async () => {
    const zstd = compress(disk.subarray(0, BLOCK));
    answer = packedAnswer([frameHeader(0, BLOCK, 'zstd', zstd.length), zstd, frameHeader(2 * BLOCK, BLOCK + 500, 'zstd', 0), disk.subarray(2 * BLOCK), frameHeader(disk.length, 0, 'zstd')]);
    const output = join(dir, 'good.raw');
    expect(await restore(output)).toMatchObject({ code: 0 });
    expect(accepted).toContain(`${EXTENTS_MEDIA_TYPE}; ${ZSTD_CODEC}`);
    expect(readFileSync(output).equals(disk)).toBe(true);
  });

  it('fails a download whose packed frame does not decompress to its length, leaving no file behind', async () => {
    const zstd = compress(disk.subarray(0, BLOCK - 1));
    answer = packedAnswer([frameHeader(0, BLOCK, 'zstd', zstd.length), zstd, frameHeader(disk.length, 0, 'zstd')]);
    const result = await restore(join(dir, 'bad.raw'));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cut off or damaged: the packed frame at 0 decompresses to 65535 bytes, not its 65536/);
    expect(readdirSync(dir).filter((f) => f.startsWith('bad.raw'))).toEqual([]);
  });
});
