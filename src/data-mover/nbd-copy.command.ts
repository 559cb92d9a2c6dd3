import { BASE_ALLOCATION, QEMU_DIRTY_BITMAP_PREFIX } from '../nbd-protocol/constants';
import type { NbdClient } from '../nbd-protocol/nbd-client';
import { parseNbdUri } from '../nbd-protocol/nbd-uri';
import { openNbd } from '../nbd-protocol/open-nbd';
import { copyDisk, CopyProgress, DEFAULT_REQUEST_SIZE, DEFAULT_REQUESTS } from './copy-disk';

export const NBD_COPY_USAGE = `usage: sendense nbd copy SRC DST [--bitmap NAME] [--requests N] [--request-size BYTES]

Copies a disk between two NBD exports (nbd://HOST[:PORT]/EXPORT or
nbd+unix:///EXPORT?socket=PATH).
  without --bitmap   full copy: only what the source's base:allocation reports
                     as data is written; DST must be a fresh (all-zero) image
  --bitmap NAME      incremental: exactly the clusters the source's dirty bitmap
                     NAME marks (the source must be exported with -B NAME)
  --requests N       requests in flight, 1-1024 (default ${DEFAULT_REQUESTS})
  --request-size B   bytes per request, 4096 to 32M, suffixes K/M allowed
                     (default ${DEFAULT_REQUEST_SIZE / 1024}K)
Progress goes to stderr, a JSON summary to stdout.
Exit status: 0 copied, 1 copy failed, 2 bad arguments, 130 interrupted.`;

export interface NbdCopyArgs {
  source: string;
  target: string;
  bitmap?: string;
  requests?: number;
  requestSize?: number;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function parseSize(text: string): number {
  const m = /^(\d+)\s*([kKmM](?:i?[bB])?|[bB])?$/.exec(text.trim());
  if (!m) throw new UsageError(`--request-size: ${JSON.stringify(text)} is not a byte count (e.g. 524288, 512K, 4M)`);
  const unit = (m[2] ?? '').toLowerCase()[0];
  const n = Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : 1);
  if (!Number.isSafeInteger(n) || n < 4096 || n > 32 * 1024 * 1024) throw new UsageError(`--request-size must be between 4096 and 32M bytes, not ${text}`);
  return n;
}

/** Parses the arguments after `sendense nbd copy` (a leading "nbd copy" is tolerated). Throws UsageError. */
export function parseNbdCopyArgs(argv: readonly string[]): NbdCopyArgs {
  let args = [...argv];
  if (args[0] === 'nbd' && args[1] === 'copy') args = args.slice(2);
  else if (args[0] === 'copy') args = args.slice(1);
  const positional: string[] = [];
  const out: Partial<NbdCopyArgs> = {};
  const seen = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--help' || arg === '-h') throw new UsageError('');
    if (arg === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option ${arg}`);
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq < 0 ? arg : arg.slice(0, eq);
    if (!['--bitmap', '--requests', '--request-size'].includes(name)) throw new UsageError(`unknown option ${name}`);
    if (seen.has(name)) throw new UsageError(`${name} given twice`);
    seen.add(name);
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      value = args[i + 1];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`${name} needs a value`);
      i++;
    }
    if (name === '--bitmap') {
      if (!value || /[\s\0]/.test(value)) throw new UsageError(`--bitmap needs a bitmap name without spaces, not ${JSON.stringify(value)}`);
      out.bitmap = value;
    } else if (name === '--requests') {
      if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 1024) throw new UsageError(`--requests must be an integer from 1 to 1024, not ${JSON.stringify(value)}`);
      out.requests = Number(value);
    } else {
      out.requestSize = parseSize(value);
    }
  }
  if (positional.length < 2) throw new UsageError(`expected SRC and DST NBD URIs, got ${positional.length} argument(s)`);
  if (positional.length > 2) throw new UsageError(`unexpected argument ${JSON.stringify(positional[2])}`);
  const [source, target] = positional;
  for (const [what, uri] of [
    ['SRC', source],
    ['DST', target],
  ] as const) {
    try {
      parseNbdUri(uri);
    } catch (error) {
      throw new UsageError(`${what}: ${(error as Error).message}`);
    }
  }
  if (source === target) throw new UsageError('SRC and DST are the same export');
  return { source, target, ...out };
}

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

export interface NbdCopyIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Abort the copy on these signals (default SIGINT and SIGTERM). */
  signals?: NodeJS.Signals[];
  progressIntervalMs?: number;
}

/**
 * `sendense nbd copy SRC DST [--bitmap NAME] [--requests N] [--request-size BYTES]`:
 * validates arguments, copies (full, or incremental with --bitmap), prints
 * progress lines to stderr and a JSON summary to stdout. Returns the exit code.
 */
export async function nbdCopyCommand(argv: string[], io?: Partial<NbdCopyIo>): Promise<number> {
  const stdout = io?.stdout ?? ((t: string) => void process.stdout.write(t));
  const stderr = io?.stderr ?? ((t: string) => void process.stderr.write(t));
  let args: NbdCopyArgs;
  try {
    args = parseNbdCopyArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      if (error.message) stderr(`sendense nbd copy: ${error.message}\n\n${NBD_COPY_USAGE}\n`);
      else {
        stdout(`${NBD_COPY_USAGE}\n`);
        return 0;
      }
      return 2;
    }
    throw error;
  }

  const mode = args.bitmap ? 'incremental' : 'full';
  const controller = new AbortController();
  const signals = io?.signals ?? ['SIGINT', 'SIGTERM'];
  const onSignal = (signal: NodeJS.Signals) => {
    stderr(`sendense nbd copy: ${signal} received, stopping\n`);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  for (const s of signals) process.on(s, onSignal);
  let source: NbdClient | undefined;
  let target: NbdClient | undefined;
  try {
    const contexts = args.bitmap ? [QEMU_DIRTY_BITMAP_PREFIX + args.bitmap, BASE_ALLOCATION] : [BASE_ALLOCATION];
    const [src, dst] = await Promise.allSettled([openNbd(args.source, { metaContexts: contexts }), openNbd(args.target)]);
    if (src.status === 'fulfilled') source = src.value;
    if (dst.status === 'fulfilled') target = dst.value;
    if (src.status === 'rejected') throw new Error(`cannot open SRC ${args.source}: ${(src.reason as Error).message}`);
    if (dst.status === 'rejected') throw new Error(`cannot open DST ${args.target}: ${(dst.reason as Error).message}`);
    if (!source || !target) throw new Error('unreachable');
    stderr(`sendense nbd copy: ${mode} copy of ${mib(source.size)} MiB from ${args.source} to ${args.target}\n`);
    const onProgress = (p: CopyProgress) => {
      const pct = p.bytesPlanned ? ((100 * p.bytesDone) / p.bytesPlanned).toFixed(1) : '100.0';
      stderr(`progress ${pct}% ${mib(p.bytesDone)}/${mib(p.bytesPlanned)} MiB ${mib(p.rate)} MiB/s\n`);
    };
    const summary = await copyDisk({
      source,
      target,
      mode,
      bitmap: args.bitmap,
      requests: args.requests,
      requestSize: args.requestSize,
      signal: controller.signal,
      onProgress,
      progressIntervalMs: io?.progressIntervalMs ?? 1000,
    });
    await Promise.all([source.close(), target.close()]);
    stdout(
      `${JSON.stringify({
        source: args.source,
        target: args.target,
        ...(args.bitmap ? { bitmap: args.bitmap } : {}),
        ...summary,
        bytesPerSecond: summary.durationMs > 0 ? Math.round(((summary.bytesWritten + summary.bytesZeroed) * 1000) / summary.durationMs) : 0,
      })}\n`,
    );
    return 0;
  } catch (error) {
    const aborted = controller.signal.aborted;
    stderr(`sendense nbd copy: ${aborted ? 'interrupted' : 'failed'}: ${error instanceof Error ? error.message : String(error)}\n`);
    return aborted ? 130 : 1;
  } finally {
    for (const s of signals) process.off(s, onSignal);
    source?.destroy();
    target?.destroy();
  }
}
