import { Appended, Command } from '../../eventing/command';
import type { PointExportOpenedData } from '../point-export.events';

/** Recorded once every disk's qemu-nbd serves. */
export class OpenPointExportCommand extends Command<Appended> {
  constructor(
    readonly openedExport: PointExportOpenedData,
    /** SENDENSE_NBD_BIND: decides whether a plain export may exist. */
    readonly nbdBind: string,
  ) {
    super();
  }
}
