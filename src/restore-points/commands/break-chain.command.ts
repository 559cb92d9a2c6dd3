import { Command } from '../../eventing/command';
import { ChainAppended } from './chain-appended';

/** A backup will not build on this point: the chain is recorded broken there, with why. */
export class BreakChainCommand extends Command<ChainAppended> {
  constructor(
    readonly vmId: string,
    readonly repositoryId: string,
    readonly restorePointId: string,
    readonly reason: string,
  ) {
    super();
  }
}
