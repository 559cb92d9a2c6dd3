import { Appended, Command } from '../../eventing/command';
import { Capacity } from '../registry/repository.events';

export class RecordCapacitySampleCommand extends Command<Appended> {
  constructor(
    readonly repositoryId: string,
    readonly capacity: Capacity,
  ) {
    super();
  }
}
