import type { DamagedBlock, DrillScreenshot } from '../wire/restore-protocol';

/** In-process wake-ups after an append committed: notices for this hub's restore workflow, never facts. */
export class RestoreQueued {
  constructor(readonly restoreId: string) {}
}

export class RestoreCancelNotice {
  constructor(
    readonly restoreId: string,
    /** The RestoreCancelRequested event, or null when the cancel had already been recorded. */
    readonly eventId: string | null,
  ) {}
}

export type AgentOutcome =
  | { domain: { name: string; uuid: string; started: boolean } }
  | { failure: string; damaged: DamagedBlock[] }
  | { drill: { passed: boolean; bootMs: number | null; reason: string | null; screenshot: DrillScreenshot | null } };

/** The agent's last word on a restore: the domain it made (or the one whose disks it replaced), or why it gave up. */
export class AgentFinishedRestore {
  constructor(
    readonly restoreId: string,
    readonly outcome: AgentOutcome,
  ) {}
}
