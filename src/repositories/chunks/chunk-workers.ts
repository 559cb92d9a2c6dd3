import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ChunkFormatError } from './chunk-format';

/*
 * The worker's whole program, inline as block-hasher.ts has it, so that it runs alike from dist/ and under ts-jest
 * (no .js file to find); zstd-napi is required by the path the main thread resolved. It is chunk-format.ts's
 * sealChunk and openChunk over again, byte for byte the same records (chunk-workers.int.spec.ts opens what each
 * seals with the other); keep the two together. Every buffer it answers with owns its ArrayBuffer, which is
 * transferred, not copied.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createCipheriv, createDecipheriv, randomBytes } = require('node:crypto');
const { compress, decompress } = require(workerData.zstd);
const NONCE = 12;
const TAG = 16;
const COMPRESSED = 1;
class FormatError extends Error {}

function seal({ digest, data, key, level }) {
  const packed = compress(data, { compressionLevel: level });
  const [flag, body] = packed.length < data.length ? [COMPRESSED, packed] : [0, data];
  if (!key) {
    const out = Buffer.allocUnsafeSlow(1 + body.length);
    out[0] = flag;
    out.set(body, 1);
    return out;
  }
  const nonce = randomBytes(NONCE);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(digest);
  const parts = [nonce, cipher.update(Buffer.of(flag)), cipher.update(body), cipher.final(), cipher.getAuthTag()];
  const out = Buffer.allocUnsafeSlow(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) at += p.copy(out, at);
  return out;
}

function open({ digest, record, key }) {
  const what = 'chunk ' + digest.toString('hex');
  let plain = record;
  if (key) {
    if (record.length < NONCE + TAG) throw new FormatError(what + ' is too short to be sealed (' + record.length + ' bytes)');
    const decipher = createDecipheriv('aes-256-gcm', key, record.subarray(0, NONCE));
    decipher.setAAD(digest);
    decipher.setAuthTag(record.subarray(record.length - TAG));
    try {
      plain = Buffer.concat([decipher.update(record.subarray(NONCE, record.length - TAG)), decipher.final()]);
    } catch {
      throw new FormatError(what + " does not open with this repository's key: another key, or damaged");
    }
  }
  if (plain.length < 1 || plain[0] > COMPRESSED) throw new FormatError(what + ' has no valid record');
  return plain[0] === COMPRESSED ? decompress(plain.subarray(1)) : plain.subarray(1);
}

/** A buffer whose ArrayBuffer is its own, to be transferred; a slice of a bigger or shared one is copied out first. */
function owned(buffer) {
  if (buffer.buffer.byteLength <= buffer.length + 64 && !(buffer.buffer instanceof SharedArrayBuffer)) return buffer;
  const copy = Buffer.allocUnsafeSlow(buffer.length);
  buffer.copy(copy);
  return copy;
}

parentPort.on('message', (job) => {
  const buf = (view) => view && Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  try {
    const args = { digest: buf(job.digest), data: buf(job.data), record: buf(job.record), key: buf(job.key), level: job.level };
    const out = owned(job.op === 'seal' ? seal(args) : open(args));
    parentPort.postMessage({ id: job.id, out }, [out.buffer]);
  } catch (error) {
    parentPort.postMessage({ id: job.id, error: String((error && error.message) || error), format: error instanceof FormatError });
  }
});
`;

interface Waiter {
  resolve: (out: Buffer) => void;
  reject: (error: Error) => void;
}

interface Thread {
  worker: Worker;
  pending: Map<number, Waiter>;
}

export interface ChunkWorkersOptions {
  /** Threads in the pool; by default one per core. */
  threads?: number;
  /** The zstd-napi module the threads load; by default the one this process loads. */
  zstdModule?: string;
}

/** One thread per core: measured on 2 cores, where the main thread still has TLS and NBD (docs/benchmarks.md, chunk-target). */
export function defaultChunkWorkerThreads(): number {
  return Math.max(1, availableParallelism());
}

/**
 * Worker threads that seal and open chunk records (chunk-format.ts's sealChunk and openChunk) off the main thread,
 * so that a chunk store's NBD server (chunk-nbd) compresses, encrypts, decrypts and decompresses while its main
 * thread runs TLS and NBD. Each job goes to the thread with the fewest under way; buffers are transferred both ways.
 * A job that fails in a thread (a record that does not open) rejects alone; a thread that dies rejects the jobs it had
 * and is replaced by the next job. Idle threads do not keep the process alive; `close` ends them.
 */
export class ChunkWorkers {
  private readonly threads: (Thread | null)[];
  private readonly zstd: string;
  private nextId = 0;
  private closed = false;

  constructor(options: ChunkWorkersOptions = {}) {
    const threads = options.threads ?? defaultChunkWorkerThreads();
    if (!Number.isSafeInteger(threads) || threads < 1) throw new RangeError(`a pool of chunk workers has at least one thread, not ${threads}`);
    this.zstd = options.zstdModule ?? require.resolve('zstd-napi');
    // started at once: a thread takes some tens of ms to start, which overlap the store's open
    this.threads = Array.from({ length: threads }, () => this.start());
  }

  get size(): number {
    return this.threads.length;
  }

  /** The record of a chunk, as sealChunk makes it. `data` is copied (the caller's buffer is left as it is). */
  seal(digest: Buffer, data: Buffer, key: Buffer | null, level: number): Promise<Buffer> {
    return this.run('seal', digest, transferable(data, false), key, level);
  }

  /**
   * The plaintext of a chunk's record, as openChunk gives it (a ChunkFormatError for a record that does not open).
   * With `give`, a record that owns all of its ArrayBuffer (Buffer.allocUnsafeSlow) is handed to the thread, not
   * copied, and is empty after; without, the caller's record is left as it is.
   */
  open(digest: Buffer, record: Buffer, key: Buffer | null, give = false): Promise<Buffer> {
    return this.run('open', digest, transferable(record, give), key, 0);
  }

  /** Ends the threads; jobs still under way reject. */
  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.splice(0).filter((t): t is Thread => t !== null);
    await Promise.all(
      threads.map(async (thread) => {
        thread.worker.removeAllListeners('exit');
        thread.worker.removeAllListeners('error');
        await thread.worker.terminate();
        for (const waiter of thread.pending.values()) waiter.reject(new Error('the chunk worker threads were closed'));
        thread.pending.clear();
      }),
    );
  }

  private run(op: 'seal' | 'open', digest: Buffer, moved: Buffer, key: Buffer | null, level: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('the chunk worker threads were closed'));
    let k = 0;
    for (let i = 1; i < this.threads.length; i++) if ((this.threads[i]?.pending.size ?? 0) < (this.threads[k]?.pending.size ?? 0)) k = i;
    const thread = this.threads[k] ?? (this.threads[k] = this.start());
    const id = this.nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      if (thread.pending.size === 0) thread.worker.ref();
      thread.pending.set(id, { resolve, reject });
      // the digest and key as copies of their own: a view is cloned with all of its ArrayBuffer (a pack index's, a pool slab)
      const small = { digest: new Uint8Array(digest), key: key && new Uint8Array(key) };
      thread.worker.postMessage({ id, op, level, ...small, [op === 'seal' ? 'data' : 'record']: moved }, [moved.buffer as ArrayBuffer]);
    });
  }

  private start(): Thread {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { zstd: this.zstd } });
    worker.unref();
    const thread: Thread = { worker, pending: new Map() };
    worker.on('message', (answer: { id: number; out?: Uint8Array; error?: string; format?: boolean }) => {
      const waiter = thread.pending.get(answer.id);
      thread.pending.delete(answer.id);
      if (thread.pending.size === 0) worker.unref();
      if (!waiter) return;
      if (answer.out) waiter.resolve(Buffer.from(answer.out.buffer, answer.out.byteOffset, answer.out.byteLength));
      else waiter.reject(answer.format ? new ChunkFormatError(answer.error) : new Error(`a chunk worker thread failed: ${answer.error}`));
    });
    let failure: Error | null = null;
    worker.on('error', (error) => (failure ??= error));
    worker.on('exit', (code) => {
      // the next job starts a thread in its place
      const at = this.threads.indexOf(thread);
      if (at >= 0) this.threads[at] = null;
      const error = new Error(`a chunk worker thread ended (${failure ? failure.message : `exit code ${code}`})`);
      for (const waiter of thread.pending.values()) waiter.reject(error);
      thread.pending.clear();
    });
    return thread;
  }
}

/**
 * A buffer whose ArrayBuffer may be transferred to a thread: `buffer` itself when it is given and owns all of a plain
 * ArrayBuffer, else a copy that does. A slice of a bigger buffer (an NBD request's payload, a Buffer pool slab) is
 * never transferred: that would empty the rest of it.
 */
function transferable(buffer: Buffer, give: boolean): Buffer {
  if (give && buffer.byteOffset === 0 && buffer.buffer.byteLength === buffer.length && buffer.buffer instanceof ArrayBuffer) return buffer;
  const out = Buffer.allocUnsafeSlow(buffer.length);
  buffer.copy(out);
  return out;
}
