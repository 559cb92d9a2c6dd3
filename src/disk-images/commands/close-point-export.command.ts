import { Appended, Command } from '../../eventing/command';
import type { PointExportCloseReason } from '../point-export.events';

/** Recorded after its qemu-nbds are gone (or found gone). Closing a closed export appends nothing. */
export class ClosePointExportCommand extends Command<Appended> {
  constructor(
    readonly exportId: string,
    readonly reason: PointExportCloseReason,
    readonly detail: string | null = null,
  ) {
    super();
  }
}
