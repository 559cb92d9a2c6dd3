import { Command } from '../../eventing/command';
import { RestorePoint } from '../chain.events';
import { ChainAppended } from './chain-appended';

export interface RescanFinding extends ChainAppended {
  outcome: 'added' | 'known' | 'broken';
  /** Why the chain is broken, for outcome `broken`. */
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
