import { Appended, Command } from '../../eventing/command';
import { MountVolume } from '../restore-mount.events';

export class MarkRestoreMountReadyCommand extends Command<Appended & { eventIds: string[] }> {
  constructor(
    readonly mountId: string,
    readonly partitionTable: string,
    readonly diskSize: number,
    readonly volumes: MountVolume[],
  ) {
    super();
  }
}
