import { Appended, Command } from '../../eventing/command';

export interface RestoreMountRequested extends Appended {
  mountId: string;
  eventIds: string[];
}

/** A person asks for one disk of a restore point to be mounted for browsing. */
export class RequestRestoreMountCommand extends Command<RestoreMountRequested> {
  constructor(
    readonly restorePointId: string,
    /** Required when the point has more than one disk. */
    readonly diskId?: string,
  ) {
    super();
  }
}
