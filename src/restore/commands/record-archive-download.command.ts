import { Appended, Command } from '../../eventing/command';
import type { Integrity } from '../../restore-points/chain.aggregate';

export class RecordArchiveDownloadCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly mountId: string,
    readonly volume: string,
    readonly path: string,
    readonly format: 'tar.gz' | 'zip',
    /** Bytes actually sent. */
    readonly bytes: number,
    readonly complete: boolean,
    /** What the download's response header said about the restore point. */
    readonly integrity: Integrity,
  ) {
    super();
  }
}
