import { Command } from '../../eventing/command';
import type { DamagedBlock } from '../../wire/restore-protocol';
import { RestoreResult } from './restore-result';

/** Recorded once nothing of the restore is left on the hub (exports stopped); the agent undid its part. */
export class FailRestoreCommand extends Command<RestoreResult> {
  constructor(readonly restoreId: string, readonly reason: string, readonly damaged: DamagedBlock[] = []) {
    super();
  }
}
