import { Appended, Command } from '../../eventing/command';
import { ReleaseReason } from '../restore-mount.events';

/** Records that a mount is (or is to be) taken down; releasing a released or failed mount changes nothing. */
export class ReleaseRestoreMountCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly mountId: string,
    readonly reason: ReleaseReason,
    readonly detail: string | null = null,
    /** A takeover: the mount was held by this hub process, which is gone for good. */
    readonly from?: string,
  ) {
    super();
  }
}
