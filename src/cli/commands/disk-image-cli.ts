import { promises as fs } from 'node:fs';
import { resolve } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { Transform, TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hubToken } from '../hub-api';
import { HubCertificateError, hubEndpoint, hubRequest, readAll } from '../../wire/hub-tls';
import { progressLine } from '../progress-bar';
import { DISK_SIZE_HEADER, ExtentsCodec, ExtentsDecoder, ExtentsFormatError, EXTENTS_MEDIA_TYPE, extentsType, FrameUnpacker, ZSTD_CODEC } from '../../disk-images/image-extents';
import { SparseFileWriter, SparseImageFile } from '../../disk-images/sparse-file-writer';

export const RESTORE_DISK_USAGE = '  sendense restore disk RESTORE_POINT --disk DISK -o FILE [--format raw|qcow2] [--force]   download a disk as one image (raw: sparse)';

const USAGE = `usage:
${RESTORE_DISK_USAGE}

raw (the default) is the disk byte for byte, written sparsely: runs of zeroes stay holes.
qcow2 is a self-contained qcow2 without a backing file, built on the hub for this download.
A corrupt restore point is refused unless --force is given.
`;

const PROGRESS_MS = 250;

interface Io {
  stdout: Writable;
  stderr: Writable;
  cwd: string;
}

class UsageError extends Error {}

function parse(args: string[]): { restorePointId: string; diskId: string; output: string; format: 'raw' | 'qcow2'; force: boolean } {
  const positional: string[] = [];
  const options: Record<string, string> = {};
  let force = false;
  const names: Record<string, string> = { '--disk': 'disk', '-o': 'output', '--output': 'output', '--format': 'format' };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--force') {
      force = true;
      continue;
    }
    if (arg.startsWith('-') && arg !== '-') {
      const eq = arg.indexOf('=');
      const flag = eq > 0 ? arg.slice(0, eq) : arg;
      const name = names[flag];
      if (!name) throw new UsageError(`unknown option ${flag}`);
      const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
      if (value === undefined) throw new UsageError(`${flag} needs a value`);
      options[name] = value;
    } else positional.push(arg);
  }
  if (positional.length !== 1) throw new UsageError('restore disk needs exactly one RESTORE_POINT');
  if (!options.disk) throw new UsageError('restore disk needs --disk DISK');
  if (!options.output || options.output === '-') throw new UsageError('restore disk needs -o FILE (a file: a raw image is written sparsely, which a pipe cannot hold)');
  const format = options.format ?? 'raw';
  if (format !== 'raw' && format !== 'qcow2') throw new UsageError(`--format must be raw or qcow2, not ${JSON.stringify(format)}`);
  return { restorePointId: positional[0], diskId: options.disk, output: options.output, format, force };
}

async function refusal(res: IncomingMessage): Promise<string> {
  const text = (await readAll(res)).toString('utf8');
  try {
    const parsed = JSON.parse(text) as { message?: string | string[] };
    if (parsed.message) return `${res.statusCode} ${Array.isArray(parsed.message) ? parsed.message.join('; ') : parsed.message}`;
  } catch {
    /* not JSON */
  }
  return `${res.statusCode} ${text || res.statusMessage}`;
}

/** Counts bytes and redraws the bar: on a terminal in place, elsewhere once at the end. */
class Progress extends Transform {
  bytes = 0;
  private readonly started = Date.now();
  private last = 0;

  constructor(
    private readonly label: string,
    private readonly planned: number,
    private readonly out: Writable,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.reached(this.bytes + chunk.length);
    callback(null, chunk);
  }

  /** The image is done up to `bytes` (holes included). */
  reached(bytes: number): void {
    this.bytes = bytes;
    const now = Date.now();
    if ((this.out as Writable & { isTTY?: boolean }).isTTY && now - this.last >= PROGRESS_MS) {
      this.last = now;
      this.out.write(`\r${this.line(false)}`);
    }
  }

  finish(): void {
    const tty = (this.out as Writable & { isTTY?: boolean }).isTTY;
    this.out.write(`${tty ? '\r' : ''}${this.line(true)}\n`);
  }

  private line(done: boolean): string {
    const seconds = Math.max((Date.now() - this.started) / 1000, 0.001);
    return progressLine({ diskId: this.label, bytesDone: this.bytes, bytesPlanned: this.planned, rate: this.bytes / seconds, done });
  }
}

/** The answer's bytes, written sparsely into `file`: its Content-Length is the image's size. */
async function saveBytes(res: IncomingMessage, file: string, diskId: string, stderr: Writable): Promise<{ position: number; written: number }> {
  const expected = Number(res.headers['content-length']);
  const progress = new Progress(diskId, Number.isFinite(expected) ? expected : 0, stderr);
  const writer = new SparseFileWriter(file);
  await pipeline(res, progress, writer);
  progress.finish();
  if (Number.isFinite(expected) && writer.position !== expected) throw new Error(`received ${writer.position} of ${expected} bytes; the download was cut off`);
  return writer;
}

/** The answer's frames written into `file` at their offsets, the rest left as holes, up to the size the hub gave. */
async function saveExtents(res: IncomingMessage, codec: ExtentsCodec, path: string, diskId: string, stderr: Writable): Promise<{ position: number; written: number }> {
  const header = res.headers[DISK_SIZE_HEADER.toLowerCase()];
  const size = typeof header === 'string' && /^\d{1,16}$/.test(header) ? Number(header) : NaN;
  if (!Number.isSafeInteger(size)) {
    res.destroy();
    throw new Error(`the hub sent an image without a valid ${DISK_SIZE_HEADER} (${JSON.stringify(header)})`);
  }
  const progress = new Progress(diskId, size, stderr);
  const file = await SparseImageFile.create(path);
  // a packed frame is decompressed on this thread, straight into what the file writes: on a thread of its own, zstd
  // ran no faster (two cores shared with the hub) and its memory and messages cost more than they saved
  const unpacker = codec ? new FrameUnpacker() : null;
  try {
    const decoder = new ExtentsDecoder(size, codec);
    for await (const chunk of res as AsyncIterable<Buffer>) {
      for (const piece of decoder.push(chunk)) {
        if ('data' in piece) await file.write(piece.offset, piece.data);
        else await file.writeMade(piece.offset, piece.length, (into) => unpacker!.unpack(piece, into));
      }
      progress.reached(file.position);
    }
    if (!res.complete) throw new Error(`received ${file.position} of ${size} bytes; the download was cut off`);
    decoder.finish();
    await file.finish(size);
    progress.reached(size);
    progress.finish();
    return file;
  } catch (error) {
    res.destroy();
    if (error instanceof ExtentsFormatError) throw new Error(`the download was cut off or damaged: ${error.message}`);
    throw error;
  } finally {
    await file.close();
  }
}

/**
 * `sendense restore disk RP --disk D -o FILE`: the disk as one image. Written beside the target
 * and renamed when complete, so a cut-off download never looks like an image. Exit codes: 0 done,
 * 1 refused or failed (the hub's message is printed), 2 usage.
 */
export async function restoreDiskCommand(args: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  let partial: string | undefined;
  try {
    const o = parse(args);
    const hub = hubEndpoint(env);
    const base = hub.url.href.replace(/\/+$/, '');
    const target = resolve(io.cwd, o.output);
    if (await fs.stat(target).then(() => true, () => false)) throw new Error(`${target} already exists; choose another name with -o FILE`);
    const query = new URLSearchParams({ format: o.format, ...(o.force ? { force: 'true' } : {}) });
    const path = `${hub.url.pathname.replace(/\/+$/, '')}/api/v1/restore-points/${encodeURIComponent(o.restorePointId)}/disks/${encodeURIComponent(o.diskId)}/image?${query}`;
    // the answer's own stream, not a fetch Response: a web stream between the socket and the file halves the rate
    let res: IncomingMessage;
    try {
      // a raw image comes as its data and where it lies, its holes left out, a chunk point's blocks as they are stored
      // (zstd) for this process to decompress (image-extents.ts); a hub that does not know the form sends the bytes
      const accept: Record<string, string> = o.format === 'raw' ? { Accept: `${EXTENTS_MEDIA_TYPE}; ${ZSTD_CODEC}, ${EXTENTS_MEDIA_TYPE}, application/octet-stream` } : {};
      res = await hubRequest(hub, { method: 'GET', path, headers: { Authorization: `Bearer ${hubToken(env)}`, ...accept } });
    } catch (error) {
      if (error instanceof HubCertificateError) throw error;
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`cannot reach the hub at ${base}: ${cause?.code ?? (error as NodeJS.ErrnoException).code ?? cause?.message ?? String(error)}`);
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) throw new Error(await refusal(res));
    const integrity = res.headers['x-sendense-integrity'];
    if (integrity === 'corrupt') io.stderr.write(`integrity: CORRUPT: restore point ${o.restorePointId} has damaged blocks (downloaded with --force); the image may be wrong\n`);
    else if (typeof integrity === 'string') io.stderr.write(`integrity: ${integrity}\n`);
    partial = `${target}.partial-${process.pid}`;
    const framed = extentsType(res.headers['content-type'] ?? '');
    const saved = framed.extents ? await saveExtents(res, framed.codec, partial, o.diskId, io.stderr) : await saveBytes(res, partial, o.diskId, io.stderr);
    await fs.rename(partial, target);
    partial = undefined;
    io.stderr.write(`saved ${o.format} image of ${o.diskId} (${saved.position} bytes, ${saved.written} written, the rest left as holes) to ${target}\n`);
    return 0;
  } catch (error) {
    if (partial) await fs.rm(partial, { force: true });
    if (error instanceof UsageError) {
      io.stderr.write(`sendense restore: ${error.message}\n\n${USAGE}`);
      return 2;
    }
    io.stderr.write(`sendense restore disk: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
