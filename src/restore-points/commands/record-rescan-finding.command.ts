import { Command } from '../../eventing/command';
import { RestorePoint } from '../chain.events';
import { ChainAppended } from './chain-appended';

export interface RescanFinding extends ChainAppended {
  /** `duplicate`: the point is held already in another repository (or as another VM's): nothing is recorded. */
  outcome: 'added' | 'known' | 'broken' | 'duplicate';
  /** Why the chain is broken, for outcome `broken`; where the point is held, for `duplicate`. */
  reason: string | null;
}

/** One restore point a rescan read from a manifest, and which of its files are missing. */
export class RecordRescanFindingCommand extends Command<RescanFinding> {
  constructor(
    readonly point: RestorePoint,
    readonly missingFiles: string[],
  ) {
    super();
  }
}
