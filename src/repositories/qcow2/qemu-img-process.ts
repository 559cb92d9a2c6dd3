import { spawn } from 'node:child_process';

export class QemuImgError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    detail?: string,
    readonly tool: string = 'qemu-img',
  ) {
    super(`${tool} ${args.join(' ')} failed (${exitCode === null ? 'killed' : `exit ${exitCode}`})${detail ? `: ${detail}` : ''}${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
    this.name = 'QemuImgError';
  }
}

export interface ProcessResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  /** Exit codes that carry a meaningful answer (check: 2 and 3, compare: 1) rather than a failure. */
  acceptExitCodes?: readonly number[];
}

/** LC_ALL=C keeps qemu's messages stable, since callers and operators match on them. */
export function runQemuTool(tool: 'qemu-img' | 'qemu-io', args: readonly string[], options: RunOptions = {}): Promise<ProcessResult> {
  const accepted = options.acceptExitCodes ?? [0];
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { cwd: options.cwd, env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error) => reject(new QemuImgError(args, null, '', `cannot run ${tool}: ${error.message}`, tool)));
    child.on('close', (code) => {
      const result = { exitCode: code ?? -1, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') };
      if (code !== null && accepted.includes(code)) resolve(result);
      else reject(new QemuImgError(args, code, result.stderr, undefined, tool));
    });
  });
}

export function runQemuImg(args: readonly string[], options?: RunOptions): Promise<ProcessResult> {
  return runQemuTool('qemu-img', args, options);
}
