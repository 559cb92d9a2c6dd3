import { Appended, Command } from '../../../eventing/command';
import { PruneMark, RetentionRules } from '../prune';
import { RetentionTrigger } from '../retention.events';

export interface RetentionRecorded extends Appended {
  /** False when the decision was already recorded (another hub decided after the same backup). */
  decided: boolean;
  eventIds: string[];
}

/** Records what a policy's rules keep and prune in one chain; the deletes follow, caused by the recorded event. */
export class DecideRetentionCommand extends Command<RetentionRecorded> {
  constructor(
    readonly policyId: string,
    readonly vmId: string,
    readonly repositoryId: string,
    readonly trigger: RetentionTrigger,
    readonly rules: RetentionRules,
    readonly timeZone: string,
    readonly decidedAt: string,
    readonly marks: PruneMark[],
  ) {
    super();
  }
}
