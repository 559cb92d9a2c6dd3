import { Worker } from 'node:worker_threads';
import { DIGEST_ALGORITHM, DIGEST_BLOCK_SIZE, DIGEST_LENGTH, DigestRun } from '../wire/block-digests';

/*
 * The worker's whole program, inline so it runs alike from dist/ and under ts-jest (no .js file to find).
 * It hashes a range of a SharedArrayBuffer block by block and answers with the digests back to back.
 * crypto.hash, one call per block with no Hash object: from 7 % less CPU to 1 % more than createHash in six
 * paired runs (docs/benchmarks.md, tls-send); the hash itself runs at OpenSSL's own rate either way.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { hash } = require('node:crypto');
parentPort.on('message', ({ id, shared, byteOffset, length }) => {
  const data = Buffer.from(shared, byteOffset, length);
  const digests = Buffer.alloc(Math.ceil(length / ${DIGEST_BLOCK_SIZE}) * ${DIGEST_LENGTH});
  for (let pos = 0, i = 0; pos < length; pos += ${DIGEST_BLOCK_SIZE}, i++) {
    digests.set(hash('${DIGEST_ALGORITHM}', data.subarray(pos, Math.min(pos + ${DIGEST_BLOCK_SIZE}, length)), 'buffer'), i * ${DIGEST_LENGTH});
  }
  parentPort.postMessage({ id, digests });
});
`;

/**
 * SHA-256 of the copy's blocks on a worker thread, so hashing overlaps the NBD and tunnel work of the
 * copy's own thread instead of taking its turn on it (measured in docs/benchmarks.md, "backup").
 * Buffers handed to `hash` and `hashInto` must be backed by a SharedArrayBuffer (see `sharedBuffer`): the worker
 * reads them in place, nothing is copied.
 */
export class BlockHasher {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve: (digests: Uint8Array) => void; reject: (error: Error) => void }>();
  private nextId = 0;
  private failure?: Error;

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.on('message', ({ id, digests }: { id: number; digests: Uint8Array }) => {
      const waiter = this.pending.get(id);
      this.pending.delete(id);
      waiter?.resolve(digests);
    });
    const fail = (error: Error) => {
      this.failure ??= error;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`block hasher thread exited (code ${code})`)));
  }

  /** Hashes `data` (read at `offset`, inside `run`) block by block into the run, like DigestRecorder.hashInto. */
  hashInto(run: DigestRun, offset: number, data: Buffer): Promise<void> {
    return this.hash(data).then((digests) => run.digests!.set(digests, (offset / DIGEST_BLOCK_SIZE - run.first) * DIGEST_LENGTH));
  }

  /** The digest of each block of `data`, back to back (the last block may be short). */
  hash(data: Buffer): Promise<Buffer> {
    if (!(data.buffer instanceof SharedArrayBuffer)) throw new TypeError('BlockHasher needs buffers backed by a SharedArrayBuffer');
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<Uint8Array>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, shared: data.buffer, byteOffset: data.byteOffset, length: data.length });
    }).then((digests) => Buffer.from(digests.buffer, digests.byteOffset, digests.byteLength));
  }

  /** Ends the thread; hashes still pending (a copy that stopped mid-way) reject rather than wait for ever. */
  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
    for (const waiter of this.pending.values()) waiter.reject(new Error('block hasher closed'));
    this.pending.clear();
  }

  /** Whether it can serve another copy: its thread alive and nothing of an earlier one still pending. */
  get reusable(): boolean {
    return !this.failure && this.pending.size === 0;
  }

  /** An idle hasher's thread does not keep the process alive; a busy one does, until its answers are in. */
  hold(busy: boolean): void {
    if (busy) this.worker.ref();
    else this.worker.unref();
  }
}

/** Hashers kept between copies: starting a thread cost ~24 ms of CPU here, twice per backup of a two-disk VM. */
const idle: BlockHasher[] = [];
const MAX_IDLE = 4;

/** A hasher for one copy, from those kept or new; give it back with `releaseHasher`. */
export function borrowHasher(): BlockHasher {
  const hasher = idle.pop() ?? new BlockHasher();
  hasher.hold(true);
  return hasher;
}

/** Keeps a hasher that can serve again (at most MAX_IDLE), closes any other. */
export async function releaseHasher(hasher: BlockHasher): Promise<void> {
  if (hasher.reusable && idle.length < MAX_IDLE) {
    hasher.hold(false);
    idle.push(hasher);
  } else await hasher.close();
}

/** A buffer the hasher's thread can read in place. */
export function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}
