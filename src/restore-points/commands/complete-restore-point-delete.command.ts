import { Command } from '../../eventing/command';
import { PointDisk } from '../chain.events';
import { ChainAppended } from './chain-appended';

/** The files are done: records the merge into the child, or the removal, with the child's disks as they are now. */
export class CompleteRestorePointDeleteCommand extends Command<ChainAppended> {
  constructor(
    readonly vmId: string,
    readonly repositoryId: string,
    readonly restorePointId: string,
    readonly childDisks: PointDisk[] | null,
  ) {
    super();
  }
}
