/**
 * In-process wake-ups a command handler publishes on the EventBus after its append committed.
 * They are notices for the workflow of this hub process, never facts: the facts are the events.
 */
export class BackupJobQueued {
  constructor(
    readonly jobId: string,
    readonly vmId: string,
  ) {}
}

export class JobCancelNotice {
  constructor(
    readonly jobId: string,
    /** The BackupCancelRequested event, or null when the cancel had already been recorded. */
    readonly eventId: string | null,
  ) {}
}

/** The agent's last word on a job: it ended its part, or gave up with a reason. */
export class AgentFinishedJob {
  constructor(
    readonly jobId: string,
    readonly failure: string | null,
  ) {}
}
