import { ExecuteResult } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { RestoreState } from '../restore.aggregate';
import { RestoreEvent } from '../restore.events';

/** What every restore handler answers: where to wait for read models, what it appended (the next step's cause), and the restore now. */
export interface RestoreResult extends Appended {
  eventIds: string[];
  state: RestoreState;
}

export function restoreResult({ position, eventIds, state }: ExecuteResult<RestoreState, RestoreEvent>): RestoreResult {
  return { position, eventIds, state };
}
