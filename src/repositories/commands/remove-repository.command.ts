import { Appended, Command } from '../../eventing/command';

export class RemoveRepositoryCommand extends Command<Appended> {
  constructor(readonly repositoryId: string) {
    super();
  }
}
