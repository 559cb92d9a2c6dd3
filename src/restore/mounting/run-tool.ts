import execa from 'execa';

/** A host tool (mount, losetup, sfdisk, blkid...) that failed; the message carries its own stderr for operators. */
export class HostToolError extends Error {
  constructor(
    readonly tool: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    detail?: string,
  ) {
    super(`${tool} ${args.join(' ')} failed (${detail ?? (exitCode === null ? 'killed' : `exit ${exitCode}`)})${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
    this.name = 'HostToolError';
  }
}

export interface ToolResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunToolOptions {
  /** Exit codes that are answers rather than failures (blkid 2 = nothing found, sfdisk 1 = no table). */
  acceptExitCodes?: readonly number[];
  /**
   * Every call is bounded: a tool touching a FUSE file whose server hung
   * would otherwise block the caller for ever.
   */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** LC_ALL=C keeps messages stable, since they end up in volume reasons that operators and tests read. */
export async function runTool(tool: string, args: readonly string[], options: RunToolOptions = {}): Promise<ToolResult> {
  const accepted = options.acceptExitCodes ?? [0];
  const result = await execa(tool, [...args], {
    reject: false,
    timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    killSignal: 'SIGKILL',
    env: { LC_ALL: 'C' },
    stdin: 'ignore',
  });
  // exitCode is undefined when the tool could not be started or died on a signal.
  const exitCode = result.exitCode as number | undefined;
  if (result.timedOut) throw new HostToolError(tool, args, null, result.stderr ?? '', 'timed out');
  if (exitCode === undefined || exitCode === null) {
    throw new HostToolError(tool, args, null, result.stderr ?? '', result.signal ? `killed by ${result.signal}` : (result as { originalMessage?: string }).originalMessage ?? 'could not run');
  }
  if (!accepted.includes(exitCode)) throw new HostToolError(tool, args, exitCode, result.stderr);
  return { exitCode, stdout: result.stdout, stderr: result.stderr };
}
