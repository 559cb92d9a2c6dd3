import { Appended, Command } from '../../eventing/command';

export class ChangeRepositorySettingsCommand extends Command<Appended> {
  constructor(
    readonly repositoryId: string,
    readonly maxChainDepth: number,
  ) {
    super();
  }
}
