import { Command } from '../../eventing/command';
import { RestoreResult } from './restore-result';

export class CancelRestoreCommand extends Command<RestoreResult> {
  constructor(readonly restoreId: string) {
    super();
  }
}
