import { Command } from '../../eventing/command';
import { ChainAppended } from './chain-appended';

/** A block of a point read back from the repository did not match the digest recorded when it was written. */
export class RecordCorruptionCommand extends Command<ChainAppended> {
  constructor(
    readonly vmId: string,
    readonly repositoryId: string,
    readonly restorePointId: string,
    readonly damage: { diskId: string; offset: number; length: number; expected: string; actual: string },
    /** Later points of the chain that read the block through this one (they overwrite it nowhere in between). */
    readonly readsThrough: string[],
  ) {
    super();
  }
}
