import { Command } from '../../eventing/command';
import { ChainAppended } from './chain-appended';

/** An admin takes a point out of the recycle bin before its grace ends. */
export class UndeleteRestorePointCommand extends Command<ChainAppended> {
  constructor(
    readonly vmId: string,
    readonly repositoryId: string,
    readonly restorePointId: string,
    readonly by: string,
  ) {
    super();
  }
}
