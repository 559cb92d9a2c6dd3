import { Command } from '../../eventing/command';
import { RestoreResult } from './restore-result';

/** A cancelled restore has ended: the agent undid its part and the exports are stopped. */
export class RecordRestoreCancelledCommand extends Command<RestoreResult> {
  constructor(readonly restoreId: string) {
    super();
  }
}
