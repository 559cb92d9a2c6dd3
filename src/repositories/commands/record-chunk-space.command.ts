import { Appended, Command } from '../../eventing/command';
import { ChunkSpace, CollectionFigures } from '../registry/repository.events';

/** What a chunks repository's store holds, measured just now; `collected`: what the collection before the measure freed. */
export class RecordChunkSpaceCommand extends Command<Appended> {
  constructor(
    readonly repositoryId: string,
    readonly space: ChunkSpace,
    readonly collected: CollectionFigures | null,
  ) {
    super();
  }
}
