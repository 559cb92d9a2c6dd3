import { Query } from '@nestjs/cqrs';

/** The points a sync run recorded here (their `source.runId`), oldest first, with the bytes each received. */
export class SyncedInRunQuery extends Query<{ restorePointId: string; bytesReceived: number }[]> {
  constructor(readonly runId: string) {
    super();
  }
}
