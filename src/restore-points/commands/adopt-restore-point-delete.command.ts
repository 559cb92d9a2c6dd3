import { Command } from '../../eventing/command';
import { ChainAppended } from './chain-appended';

/** This hub process takes over the delete a gone process (`from`; null: one never named) left pending. */
export class AdoptRestorePointDeleteCommand extends Command<ChainAppended> {
  constructor(
    readonly vmId: string,
    readonly repositoryId: string,
    readonly restorePointId: string,
    readonly hubInstance: string,
    readonly from: string | null,
  ) {
    super();
  }
}
