import { describeFailure, ProcessError, runProcess } from '../../process/run-process';
import { Command } from '../registry/mount-commands';

/** Runs mount/umount; the only place that does. */
export class MountRunner {
  async run(command: Command): Promise<void> {
    try {
      await runProcess(command.file, command.args, { timeoutMs: 60_000 });
    } catch (error) {
      if (!(error instanceof ProcessError)) throw error;
      throw new Error(`${command.file} ${command.args.join(' ')} failed (${describeFailure(error.failure)}): ${(error.stderr || error.stdout).trim()}`);
    }
  }
}
