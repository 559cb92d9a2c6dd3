import { Command } from '../../eventing/command';
import { ChainAppended } from './chain-appended';

/** Records the delete and its strategy before any file changes, so a crash in between can be finished later. */
export class StartRestorePointDeleteCommand extends Command<ChainAppended> {
  constructor(
    readonly vmId: string,
    readonly repositoryId: string,
    readonly restorePointId: string,
    /** A purge of the recycle bin: the point only while it is there, its grace ended by this instant (ISO 8601). */
    readonly dueBy?: string,
    /** The hub process that runs the delete: no other touches its files while it lives. */
    readonly hubInstance?: string,
  ) {
    super();
  }
}
