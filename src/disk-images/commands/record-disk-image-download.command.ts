import { Appended, Command } from '../../eventing/command';
import type { DiskImageDownload } from '../disk-image.events';

/** After the last byte left, or the download stopped: what was sent, to whom (the request's actor). */
export class RecordDiskImageDownloadCommand extends Command<Appended> {
  constructor(readonly download: Omit<DiskImageDownload, 'actor'>) {
    super();
  }
}
