import execa from 'execa';
import { Command } from './mount-commands';

/** Runs mount/umount; the only place that does. */
export class MountRunner {
  async run(command: Command): Promise<void> {
    const result = await execa(command.file, command.args, { reject: false, timeout: 60_000 });
    if (result.exitCode !== 0) {
      throw new Error(`${command.file} ${command.args.join(' ')} failed (exit ${result.exitCode}): ${(result.stderr || result.stdout).trim()}`);
    }
  }
}
