import { Command } from '../../eventing/command';
import type { RestoreExport } from '../restore.events';
import { RestoreResult } from './restore-result';

/** The hub holding the agent's session takes the restore, with the point's disks exported for the agent. */
export class StartRestoreCommand extends Command<RestoreResult> {
  constructor(readonly restoreId: string, readonly hubInstance: string, readonly exports: RestoreExport[]) {
    super();
  }
}
