import { Command } from '../../eventing/command';
import { ChainAppended } from './chain-appended';

/** Records the delete and its strategy before any file changes, so a crash in between can be finished later. */
export class StartRestorePointDeleteCommand extends Command<ChainAppended> {
  constructor(
    readonly vmId: string,
    readonly repositoryId: string,
    readonly restorePointId: string,
  ) {
    super();
  }
}
