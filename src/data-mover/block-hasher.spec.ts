import { randomBytes } from 'node:crypto';
import { DIGEST_BLOCK_SIZE, DigestRecorder } from '../wire/block-digests';
import { BlockHasher, borrowHasher, releaseHasher, sharedBuffer } from './block-hasher';

describe('BlockHasher (SHA-256 of a copy\'s blocks on a worker thread)', () => {
  let hasher: BlockHasher;
  beforeEach(() => (hasher = new BlockHasher()));
  afterEach(() => hasher.close());

  it('fills a run with exactly the digests DigestRecorder.hashInto computes on the calling thread, the short last block included', async () => {
    const size = 5 * DIGEST_BLOCK_SIZE + 1000;
    const data = sharedBuffer(size);
    randomBytes(size).copy(data);
    const onThread = new DigestRecorder(size);
    const inWorker = new DigestRecorder(size);
    const a = onThread.add(0, size, false);
    const b = inWorker.add(0, size, false);
    DigestRecorder.hashInto(a, 0, data);
    // two requests of one operation, answered in any order
    await Promise.all([hasher.hashInto(b, 3 * DIGEST_BLOCK_SIZE, data.subarray(3 * DIGEST_BLOCK_SIZE)), hasher.hashInto(b, 0, data.subarray(0, 3 * DIGEST_BLOCK_SIZE))]);
    expect(b.digests!.equals(a.digests!)).toBe(true);
    expect(inWorker.result().encode().equals(onThread.result().encode())).toBe(true);
  });

  it('refuses a buffer the worker cannot read in place', () => {
    const recorder = new DigestRecorder(DIGEST_BLOCK_SIZE);
    expect(() => hasher.hashInto(recorder.add(0, DIGEST_BLOCK_SIZE, false), 0, Buffer.alloc(DIGEST_BLOCK_SIZE))).toThrow('SharedArrayBuffer');
  });
});

describe('borrowHasher / releaseHasher (threads kept between copies)', () => {
  it('hands the same thread to the next copy, and closes one that cannot serve again', async () => {
    const first = borrowHasher();
    const data = sharedBuffer(DIGEST_BLOCK_SIZE);
    const digest = await first.hash(data);
    await releaseHasher(first);
    const again = borrowHasher();
    expect(again).toBe(first);
    expect((await again.hash(data)).equals(digest)).toBe(true);
    // a copy aborted with a hash still pending: its thread is not kept. 64 MiB, so that the hash is still under way
    // when the thread is ended (4 MiB were hashed before the end on a fast machine, and the hash resolved)
    const pending = again.hash(sharedBuffer(1024 * DIGEST_BLOCK_SIZE));
    await releaseHasher(again);
    await expect(pending).rejects.toThrow();
    const fresh = borrowHasher();
    expect(fresh).not.toBe(first);
    await releaseHasher(fresh);
  });
});
