import { Appended, Command } from '../../eventing/command';

export class RecordArchiveDownloadCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly mountId: string,
    readonly volume: string,
    readonly path: string,
    readonly format: 'tar.gz' | 'zip',
    /** Bytes actually sent. */
    readonly bytes: number,
    readonly complete: boolean,
  ) {
    super();
  }
}
