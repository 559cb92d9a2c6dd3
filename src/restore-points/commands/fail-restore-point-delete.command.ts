import { Command } from '../../eventing/command';
import { ChainAppended } from './chain-appended';

/** The delete stops without removing the point; `undone` when its files are exactly as before it started. */
export class FailRestorePointDeleteCommand extends Command<ChainAppended> {
  constructor(
    readonly vmId: string,
    readonly repositoryId: string,
    readonly restorePointId: string,
    readonly reason: string,
    readonly undone: boolean,
  ) {
    super();
  }
}
