import { Command } from '../../eventing/command';
import { RestoreResult } from './restore-result';

/** Every disk written and checked, the domain defined (or its disks replaced), the exports stopped. */
export class CompleteRestoreCommand extends Command<RestoreResult> {
  constructor(readonly restoreId: string, readonly domain: { name: string; uuid: string; started: boolean }, readonly durationMs: number) {
    super();
  }
}
