import { Appended } from '../../eventing/command';

/** What a chain command appended: a workflow names these event ids as the cause of its next step. */
export interface ChainAppended extends Appended {
  eventIds: string[];
}
