import { Appended, Command } from '../../eventing/command';
import type { Integrity } from '../../restore-points/chain.aggregate';

export class RecordFileDownloadCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly mountId: string,
    readonly volume: string,
    readonly path: string,
    /** The byte range asked for ("bytes=0-99"), or null for the whole file. */
    readonly range: string | null,
    /** Bytes actually sent. */
    readonly bytes: number,
    readonly complete: boolean,
    /** What the download's response header said about the restore point. */
    readonly integrity: Integrity,
  ) {
    super();
  }
}
