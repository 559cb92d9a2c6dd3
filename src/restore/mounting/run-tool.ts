import { describeFailure, ProcessError, runProcess } from '../../process/run-process';

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

/** Messages stay in the C locale, since they end up in volume reasons that operators and tests read. */
export async function runTool(tool: string, args: readonly string[], options: RunToolOptions = {}): Promise<ToolResult> {
  try {
    return await runProcess(tool, args, { acceptExitCodes: options.acceptExitCodes, timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS });
  } catch (error) {
    if (!(error instanceof ProcessError)) throw error;
    throw new HostToolError(tool, args, error.exitCode, error.stderr, error.failure.kind === 'exit' ? undefined : describeFailure(error.failure));
  }
}
