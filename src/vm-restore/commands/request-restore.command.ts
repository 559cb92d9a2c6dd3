import { Command } from '../../eventing/command';
import type { MinimalDefinition, RestoreTarget } from '../../wire/restore-protocol';
import type { KnownDamage } from '../restore.events';
import { RestoreResult } from './restore-result';

/** Sent by the restore workflow once the point, the agent and the target passed their checks. */
export class RequestRestoreCommand extends Command<RestoreResult> {
  constructor(
    readonly restoreId: string,
    readonly restorePointId: string,
    readonly vmId: string,
    readonly repositoryId: string,
    readonly agentId: string,
    readonly mode: 'full' | 'instant',
    readonly target: RestoreTarget,
    readonly definition: MinimalDefinition | null,
    readonly force: boolean,
    readonly knownDamage: KnownDamage[],
  ) {
    super();
  }
}
