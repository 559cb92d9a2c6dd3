import { Appended, Command } from '../../../eventing/command';

/** A point the decision pruned is in use: it stays, and the policy tries again later. */
export class DeferPruneCommand extends Command<Appended> {
  constructor(
    readonly policyId: string,
    readonly vmId: string,
    readonly repositoryId: string,
    readonly restorePointId: string,
    readonly reason: string,
  ) {
    super();
  }
}
