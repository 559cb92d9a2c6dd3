import { Command } from '../../eventing/command';
import { ChainAppended } from './chain-appended';

/** A delete within the grace period: the point goes to the recycle bin and its files stay as they are. */
export class RecycleRestorePointCommand extends Command<ChainAppended> {
  constructor(
    readonly vmId: string,
    readonly repositoryId: string,
    readonly restorePointId: string,
    readonly recycledAt: Date,
    readonly purgeAfter: Date,
    readonly by: string,
    readonly reason: string,
  ) {
    super();
  }
}
