import { Appended, Command } from '../../eventing/command';

/** A browse of a ready mount: renews its expiry in the read model. */
export class RecordRestoreMountAccessCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly mountId: string,
    readonly volume: string,
    readonly path: string,
  ) {
    super();
  }
}
