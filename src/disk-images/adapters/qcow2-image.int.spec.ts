import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildStandardChain, BuiltChain, makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { processesMentioning } from '../../../test/support/processes';
import { compare, info } from '../../qemu/qemu-img';
import { convertToQcow2, measureQcow2 } from './qcow2-image';

const run = promisify(execFile);

describe('a self-contained qcow2 of a point', () => {
  let dir: string;
  let chain: BuiltChain;
  beforeAll(async () => {
    dir = await makeTempDir('qcow2-image');
    chain = await buildStandardChain(dir);
  });
  afterAll(async () => removeTempDir(dir));

  it('has no backing file, reads like the point, and is as thin as the data it holds', async () => {
    const target = join(dir, 'out.qcow2');
    await convertToQcow2(chain.files[3], target);
    const converted = await info(target);
    expect(converted.backingFilename).toBeNull();
    expect(converted.virtualSize).toBe(64 * 1024 * 1024);
    expect(await compare(target, chain.references[3], { formatB: 'raw' })).toBe(true);
    const { stdout } = await run('du', ['-B1', target]);
    expect(Number(stdout.split('\t')[0])).toBeLessThan(20 * 1024 * 1024);
  });

  it('measures what the conversion needs (well under the virtual size) and what is free', async () => {
    const { requiredBytes, freeBytes } = await measureQcow2(chain.files[3], dir);
    expect(requiredBytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(requiredBytes).toBeLessThan(30 * 1024 * 1024);
    expect(freeBytes).toBeGreaterThan(0);
  });

  it('kills the conversion when aborted', async () => {
    const target = join(dir, 'aborted.qcow2');
    const abort = new AbortController();
    const converting = convertToQcow2(chain.files[3], target, abort.signal);
    abort.abort();
    await expect(converting).rejects.toThrow(/killed/);
    expect(processesMentioning(target)).toEqual([]);
  });
});
