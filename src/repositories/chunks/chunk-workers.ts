import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ChunkFormatError, openChunk, sealChunk, worthCompressing } from './chunk-format';

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
const { DCtx } = require(workerData.zstdBinding);
const NONCE = 12;
const TAG = 16;
const COMPRESSED = 1;
class FormatError extends Error {}

${worthCompressing.toString()}
// nonces cut from a pool, as chunk-format.ts's takeNonce does
let nonces = Buffer.alloc(0);
let nextNonce = 0;
function takeNonce() {
  if (nextNonce + NONCE > nonces.length) {
    nonces = randomBytes(NONCE * 512);
    nextNonce = 0;
  }
  nextNonce += NONCE;
  return nonces.subarray(nextNonce - NONCE, nextNonce);
}

function seal({ digest, data, key, level }) {
  const packed = worthCompressing(data) ? compress(data, { compressionLevel: level }) : data;
  const [flag, body] = packed.length < data.length ? [COMPRESSED, packed] : [0, data];
  if (!key) {
    const out = Buffer.allocUnsafeSlow(1 + body.length);
    out[0] = flag;
    out.set(body, 1);
    return out;
  }
  const nonce = takeNonce();
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(digest);
  const parts = [nonce, cipher.update(Buffer.of(flag)), cipher.update(body), cipher.final(), cipher.getAuthTag()];
  const out = Buffer.allocUnsafeSlow(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) at += p.copy(out, at);
  return out;
}

function open({ digest, record, key, into }) {
  const what = 'chunk ' + digest.toString('hex');
  let plain = record;
  if (key) {
    if (record.length < NONCE + TAG) throw new FormatError(what + ' is too short to be sealed (' + record.length + ' bytes)');
    const decipher = createDecipheriv('aes-256-gcm', key, record.subarray(0, NONCE));
    decipher.setAAD(digest);
    decipher.setAuthTag(record.subarray(record.length - TAG));
    try {
      const body = decipher.update(record.subarray(NONCE, record.length - TAG));
      const tail = decipher.final();
      plain = tail.length ? Buffer.concat([body, tail]) : body;
    } catch {
      throw new FormatError(what + " does not open with this repository's key: another key, or damaged");
    }
  }
  if (plain.length < 1 || plain[0] > COMPRESSED) throw new FormatError(what + ' has no valid record');
  const body = plain.subarray(1);
  if (!into) return plain[0] === COMPRESSED ? decompress(body) : body;
  if (plain[0] !== COMPRESSED) {
    if (body.length > into.length) throw new FormatError(what + ' holds ' + body.length + ' bytes, more than a block');
    return into.subarray(0, body.copy(into));
  }
  try {
    return into.subarray(0, (decompressor ??= new DCtx()).decompress(into, body));
  } catch (error) {
    throw new FormatError(what + ' does not decompress into a block: ' + error.message);
  }
}
let decompressor;

/** A buffer whose ArrayBuffer is its own, to be transferred; a slice of a bigger or shared one is copied out first. */
function owned(buffer) {
  if (buffer.buffer.byteLength <= buffer.length + 64) return buffer;
  const copy = Buffer.allocUnsafeSlow(buffer.length);
  buffer.copy(copy);
  return copy;
}

// a batch: its inputs back to back in one transferred buffer; its answers in order, each output transferred, or
// written into the shared memory the job names and answered by its length
parentPort.on('message', ({ batch, jobs, input, digests, keys, shared }) => {
  const answers = [];
  const moved = [];
  let at = 0;
  jobs.forEach((job, i) => {
    const bytes = Buffer.from(input, at, job.length);
    at += job.length;
    try {
      const args = { digest: Buffer.from(digests, i * 32, 32), key: job.key < 0 ? null : Buffer.from(keys[job.key]), level: job.level };
      if (job.into) {
        const into = Buffer.from(shared[job.into.memory], job.into.offset, job.into.length);
        answers.push({ length: open({ ...args, record: bytes, into }).length });
        return;
      }
      const out = owned(job.op === 'seal' ? seal({ ...args, data: bytes }) : open({ ...args, record: bytes }));
      answers.push({ out });
      moved.push(out.buffer);
    } catch (error) {
      answers.push({ error: String((error && error.message) || error), format: error instanceof FormatError });
    }
  });
  parentPort.postMessage({ batch, answers }, moved);
});
`;

interface Job {
  op: 'seal' | 'open';
  digest: Buffer;
  input: Buffer;
  key: Buffer | null;
  level: number;
  /** Where an open writes its plaintext, in shared memory. */
  into?: Buffer;
  resolve: (out: Buffer) => void;
  reject: (error: Error) => void;
}

interface Thread {
  worker: Worker;
  /** Batches sent and not answered, by their number. */
  batches: Map<number, Job[]>;
  jobs: number;
}

/** Jobs sent to a thread in one message at most: more are split, so that both threads get some. */
const BATCH_JOBS = 8;

export interface ChunkWorkersOptions {
  /** Threads in the pool; by default one per core but one (defaultChunkWorkerThreads). */
  threads?: number;
  /** The zstd-napi module the threads load; by default the one this process loads. */
  zstdModule?: string;
  /**
   * Bytes sealed or opened on the calling thread before the threads are started (default START_AFTER_BYTES): a
   * small backup or restore never pays for them.
   */
  startAfterBytes?: number;
}

/**
 * A thread costs ~45 ms of CPU to start and answers its first job as late (measured here), what sealing ~15 MiB on
 * the calling thread costs: a small incremental does not get that far.
 */
const START_AFTER_BYTES = 32 * 1024 * 1024;

/**
 * One thread per core but the one the main thread's TLS and NBD keep busy, and at least one: on 2 cores a second
 * thread wrote no faster and cost more CPU (docs/benchmarks.md, chunk-target).
 */
export function defaultChunkWorkerThreads(): number {
  return Math.max(1, availableParallelism() - 1);
}

/**
 * Worker threads that seal and open chunk records (chunk-format.ts's sealChunk and openChunk) off the main thread,
 * so that a chunk store's NBD server (chunk-nbd) compresses, encrypts, decrypts and decompresses while its main
 * thread runs TLS and NBD. Jobs go in batches to the thread with the fewest under way, their inputs copied into one
 * buffer that is transferred, their outputs transferred back. A job that fails in a thread (a record that does not
 * open) rejects alone; a thread that dies rejects the jobs it had and is replaced by the next batch. The threads start
 * once `startAfterBytes` were done on the calling thread; idle, they do not keep the process alive; `close` ends them.
 */
export class ChunkWorkers {
  private readonly threads: (Thread | null)[];
  private readonly zstd: string;
  private readonly zstdBinding: string;
  /** Bytes still to be done on the calling thread before the threads start; below zero once started. */
  private untilStart: number;
  private readonly queue: Job[] = [];
  private nextBatch = 0;
  private closed = false;

  constructor(options: ChunkWorkersOptions = {}) {
    const threads = options.threads ?? defaultChunkWorkerThreads();
    if (!Number.isSafeInteger(threads) || threads < 1) throw new RangeError(`a pool of chunk workers has at least one thread, not ${threads}`);
    this.zstd = options.zstdModule ?? require.resolve('zstd-napi');
    this.zstdBinding = require.resolve('zstd-napi/binding');
    this.threads = new Array<Thread | null>(threads).fill(null);
    this.untilStart = options.startAfterBytes ?? START_AFTER_BYTES;
  }

  get size(): number {
    return this.threads.length;
  }

  /** The record of a chunk, as sealChunk makes it. */
  seal(digest: Buffer, data: Buffer, key: Buffer | null, level: number): Promise<Buffer> {
    return this.run('seal', digest, data, key, level);
  }

  /**
   * The plaintext of a chunk's record, as openChunk gives it (a ChunkFormatError for a record that does not open).
   * With `into`, written there as openChunk writes it: by the thread itself where `into` is shared memory (a download's
   * buffers are), or copied in from the thread's answer.
   */
  async open(digest: Buffer, record: Buffer, key: Buffer | null, into?: Buffer): Promise<Buffer> {
    if (!into) return this.run('open', digest, record, key, 0);
    if (into.buffer instanceof SharedArrayBuffer) return this.run('open', digest, record, key, 0, into);
    const plain = await this.run('open', digest, record, key, 0);
    if (plain.length > into.length) throw new ChunkFormatError(`chunk ${digest.toString('hex')} holds ${plain.length} bytes, more than a block`);
    return into.subarray(0, plain.copy(into));
  }

  /** Ends the threads; jobs still under way reject. */
  async close(): Promise<void> {
    this.closed = true;
    const queued = this.queue.splice(0);
    const threads = this.threads.splice(0).filter((t): t is Thread => t !== null);
    const error = new Error('the chunk worker threads were closed');
    for (const job of queued) job.reject(error);
    await Promise.all(
      threads.map(async (thread) => {
        thread.worker.removeAllListeners('exit');
        thread.worker.removeAllListeners('error');
        await thread.worker.terminate();
        for (const jobs of thread.batches.values()) for (const job of jobs) job.reject(error);
        thread.batches.clear();
      }),
    );
  }

  /**
   * Jobs wait for the end of this turn of the event loop and go in batches: one message, one wake-up of a thread
   * and one answer for several chunks. The inputs are copied into the batch's buffer then; until then the caller's
   * buffers must stay as they are (a put's block, a read's record).
   */
  private run(op: 'seal' | 'open', digest: Buffer, input: Buffer, key: Buffer | null, level: number, into?: Buffer): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error('the chunk worker threads were closed'));
    if (this.untilStart >= 0) {
      this.untilStart -= input.length;
      if (this.untilStart >= 0) {
        try {
          return Promise.resolve(op === 'seal' ? sealChunk(digest, input, key, level) : openChunk(digest, input, key, into));
        } catch (error) {
          return Promise.reject(error);
        }
      }
      for (let k = 0; k < this.threads.length; k++) this.threads[k] ??= this.start();
    }
    return new Promise<Buffer>((resolve, reject) => {
      this.queue.push({ op, digest, input, key, level, into, resolve, reject });
      if (this.queue.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    if (this.closed) return;
    const queue = this.queue.splice(0);
    for (let from = 0; from < queue.length; from += BATCH_JOBS) {
      let k = 0;
      for (let i = 1; i < this.threads.length; i++) if ((this.threads[i]?.jobs ?? 0) < (this.threads[k]?.jobs ?? 0)) k = i;
      this.send(this.threads[k] ?? (this.threads[k] = this.start()), queue.slice(from, from + BATCH_JOBS));
    }
  }

  private send(thread: Thread, jobs: Job[]): void {
    // not zeroed: every byte is written below
    const input = Buffer.allocUnsafeSlow(jobs.reduce((n, j) => n + j.input.length, 0)).buffer;
    const digests = Buffer.allocUnsafeSlow(32 * jobs.length).buffer;
    const keys: Buffer[] = [];
    const shared: SharedArrayBuffer[] = [];
    let at = 0;
    const described = jobs.map((job, i) => {
      new Uint8Array(input, at, job.input.length).set(job.input);
      at += job.input.length;
      new Uint8Array(digests, 32 * i, 32).set(job.digest);
      let key = job.key ? keys.indexOf(job.key) : -1;
      if (job.key && key < 0) key = keys.push(job.key) - 1;
      const into = job.into && { memory: sharedIndex(shared, job.into.buffer as SharedArrayBuffer), offset: job.into.byteOffset, length: job.into.length };
      return { op: job.op, length: job.input.length, level: job.level, key, into };
    });
    const batch = this.nextBatch++;
    if (thread.jobs === 0) thread.worker.ref();
    thread.batches.set(batch, jobs);
    thread.jobs += jobs.length;
    // keys as copies of their own: a view is cloned with all of its ArrayBuffer
    thread.worker.postMessage({ batch, jobs: described, input, digests, keys: keys.map((k) => new Uint8Array(k)), shared }, [input]);
  }

  private start(): Thread {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { zstd: this.zstd, zstdBinding: this.zstdBinding } });
    worker.unref();
    const thread: Thread = { worker, batches: new Map(), jobs: 0 };
    worker.on('message', ({ batch, answers }: { batch: number; answers: { out?: Uint8Array; length?: number; error?: string; format?: boolean }[] }) => {
      const jobs = thread.batches.get(batch);
      if (!jobs) return;
      thread.batches.delete(batch);
      thread.jobs -= jobs.length;
      if (thread.jobs === 0) worker.unref();
      answers.forEach(({ out, length, error, format }, i) => {
        if (out) jobs[i].resolve(Buffer.from(out.buffer, out.byteOffset, out.byteLength));
        else if (length !== undefined) jobs[i].resolve(jobs[i].into!.subarray(0, length));
        else jobs[i].reject(format ? new ChunkFormatError(error) : new Error(`a chunk worker thread failed: ${error}`));
      });
    });
    let failure: Error | null = null;
    worker.on('error', (error) => (failure ??= error));
    worker.on('exit', (code) => {
      // the next batch starts a thread in its place
      const at = this.threads.indexOf(thread);
      if (at >= 0) this.threads[at] = null;
      const error = new Error(`a chunk worker thread ended (${failure ? failure.message : `exit code ${code}`})`);
      for (const jobs of thread.batches.values()) for (const job of jobs) job.reject(error);
      thread.batches.clear();
      thread.jobs = 0;
    });
    return thread;
  }
}

function sharedIndex(list: SharedArrayBuffer[], memory: SharedArrayBuffer): number {
  const at = list.indexOf(memory);
  return at >= 0 ? at : list.push(memory) - 1;
}
