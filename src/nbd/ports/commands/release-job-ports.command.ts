import { Appended, Command } from '../../../eventing/command';

export interface JobPortsReleased extends Appended {
  ports: number[];
}

/** Give back every port a job still holds on this host. */
export class ReleaseJobPortsCommand extends Command<JobPortsReleased> {
  constructor(
    readonly jobId: string,
    readonly reason: string,
  ) {
    super();
  }
}
