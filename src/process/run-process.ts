import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';

export interface ProcessResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunProcessOptions {
  cwd?: string;
  /** Added to our environment, after LC_ALL=C: messages that callers, operators and tests match on stay stable unless a caller needs another locale. */
  env?: Record<string, string>;
  /** Exit codes that are answers rather than failures (blkid 2 = nothing found, qemu-img compare 1 = different). */
  acceptExitCodes?: readonly number[];
  /** Killed with SIGKILL after this long: a tool touching a hung FUSE file would otherwise block for ever. No limit when omitted. */
  timeoutMs?: number;
  /** Run as this user (PostgreSQL refuses to run as root). */
  user?: { uid: number; gid: number };
  /** SIGKILLs the program when aborted: its work is no longer wanted (the client of a download went away). */
  signal?: AbortSignal;
  /** Given the output as it comes too, for a program that reports its progress there (`qemu-img -p`). */
  onStdout?: (chunk: string) => void;
}

export type ProcessFailure =
  | { kind: 'exit'; exitCode: number }
  | { kind: 'signal'; signal: NodeJS.Signals }
  | { kind: 'timeout'; timeoutMs: number }
  | { kind: 'spawn'; message: string };

/** A program that did not give an accepted answer; callers turn it into their own error with `describeFailure`. */
export class ProcessError extends Error {
  constructor(
    readonly program: string,
    readonly args: readonly string[],
    readonly failure: ProcessFailure,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`${program} ${args.join(' ')} failed (${describeFailure(failure)})${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
    this.name = 'ProcessError';
  }

  /** The exit code when the program ran to its end, else null. */
  get exitCode(): number | null {
    return this.failure.kind === 'exit' ? this.failure.exitCode : null;
  }
}

export function describeFailure(failure: ProcessFailure): string {
  switch (failure.kind) {
    case 'exit':
      return `exit ${failure.exitCode}`;
    case 'signal':
      return `killed by ${failure.signal}`;
    case 'timeout':
      return 'timed out';
    case 'spawn':
      return failure.message;
  }
}

/** Runs a program to its end with stdin closed and collects its output. Rejects with a ProcessError. */
export function runProcess(program: string, args: readonly string[], options: RunProcessOptions = {}): Promise<ProcessResult> {
  const accepted = options.acceptExitCodes ?? [0];
  return new Promise((resolve, reject) => {
    const child = spawn(program, [...args], { cwd: options.cwd, env: environment(options.env), stdio: ['ignore', 'pipe', 'pipe'], uid: options.user?.uid, gid: options.user?.gid, signal: options.signal, killSignal: 'SIGKILL' });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, options.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout.push(chunk);
      options.onStdout?.(chunk.toString('utf8'));
    });
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    const fail = (failure: ProcessFailure, out: string, err: string) => reject(new ProcessError(program, args, failure, out, err));
    child.once('error', (error) => {
      clearTimeout(timer);
      if (child.pid === undefined) fail({ kind: 'spawn', message: error.message }, '', '');
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const out = Buffer.concat(stdout).toString('utf8');
      const err = Buffer.concat(stderr).toString('utf8');
      if (timedOut) fail({ kind: 'timeout', timeoutMs: options.timeoutMs as number }, out, err);
      else if (code === null) fail({ kind: 'signal', signal: signal as NodeJS.Signals }, out, err);
      else if (!accepted.includes(code)) fail({ kind: 'exit', exitCode: code }, out, err);
      else resolve({ exitCode: code, stdout: out, stderr: err });
    });
  });
}

export function environment(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C', ...extra };
}

/** Keeps the end of stderr only: a program streaming for long may print a lot. */
const STREAMING_STDERR_CHARS = 4000;

export interface StreamingProcess {
  /** The program's output, read as it comes (our end closes only once it exits). */
  stdout: Readable;
  /** Settles when the program has exited; rejects only if it could not be started. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** Stops it early, e.g. when the reader of stdout went away. */
  kill(): void;
}

/** For output too large to collect (archives): stdout is a stream, the exit status comes later. */
export function streamProcess(program: string, args: readonly string[], options: Pick<RunProcessOptions, 'cwd' | 'env'> = {}): StreamingProcess {
  const child = spawn(program, [...args], { cwd: options.cwd, env: environment(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-STREAMING_STDERR_CHARS)));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve, reject) => {
    child.once('error', (error) => {
      if (child.pid === undefined) reject(error);
    });
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  return {
    stdout: child.stdout,
    done,
    kill: () => {
      // Closing our end of the pipe also stops a pipeline inside it (tar's gzip), which would block on a full pipe.
      child.stdout.destroy();
      child.kill('SIGTERM');
    },
  };
}
