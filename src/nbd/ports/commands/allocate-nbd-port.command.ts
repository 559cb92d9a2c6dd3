import { Appended, Command } from '../../../eventing/command';
import { PortLease } from '../nbd-port-pool.aggregate';

export interface Allocated extends PortLease, Appended {
  eventIds: string[];
}

/** Lease a free port of this host's pool for one disk of a job. */
export class AllocateNbdPortCommand extends Command<Allocated> {
  constructor(
    readonly jobId: string,
    readonly diskId: string,
  ) {
    super();
  }
}
