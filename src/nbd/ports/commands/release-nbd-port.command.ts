import { Appended, Command } from '../../../eventing/command';

export interface Released extends Appended {
  port: number;
  jobId: string;
  leaseId: string;
}

/** Give a port back to the pool; with a lease id only if that lease still holds it (fencing). */
export class ReleaseNbdPortCommand extends Command<Released> {
  constructor(
    readonly port: number,
    readonly reason: string,
    readonly leaseId?: string,
  ) {
    super();
  }
}
