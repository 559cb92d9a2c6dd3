import { Appended, Command } from '../../eventing/command';
import { Capacity, RepositoryDefinition } from '../registry/repository.events';

export interface RegisteredRepository extends Appended {
  repositoryId: string;
  eventIds: string[];
}

/** The root is already attached and measured: the repository is recorded with its first capacity sample. */
export class RegisterRepositoryCommand extends Command<RegisteredRepository> {
  constructor(
    readonly definition: RepositoryDefinition,
    readonly capacity: Capacity,
  ) {
    super();
  }
}
