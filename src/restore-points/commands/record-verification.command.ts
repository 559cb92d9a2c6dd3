import { Command } from '../../eventing/command';
import { DigestCoverage } from '../chain.events';
import { ChainAppended } from './chain-appended';

/** What checking a restore point's chain found; any problem also marks the chain broken. */
export class RecordVerificationCommand extends Command<ChainAppended> {
  constructor(
    readonly vmId: string,
    readonly repositoryId: string,
    readonly restorePointId: string,
    readonly problems: string[],
    readonly warnings: string[],
    readonly verifiedAt: string,
    /** How much of the point's content was compared with recorded digests. */
    readonly digests: DigestCoverage,
  ) {
    super();
  }
}
