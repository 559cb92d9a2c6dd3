import { Command } from '../../eventing/command';
import { ChainAppended } from './chain-appended';

/** What checking a restore point's chain found; any problem also marks the chain broken. */
export class RecordVerificationCommand extends Command<ChainAppended> {
  constructor(
    readonly vmId: string,
    readonly repositoryId: string,
    readonly restorePointId: string,
    readonly problems: string[],
    readonly warnings: string[],
  ) {
    super();
  }
}
