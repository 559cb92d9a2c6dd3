import { Command } from '../../eventing/command';
import { PointSource, RestorePoint } from '../chain.events';
import { ChainAppended } from './chain-appended';

/** A point copied from another hub, its blocks checked against its digests: recorded in the chain as it was there. */
export class SyncRestorePointCommand extends Command<ChainAppended> {
  constructor(
    readonly point: RestorePoint,
    readonly synced: PointSource,
  ) {
    super();
  }
}
