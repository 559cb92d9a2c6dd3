import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import {
  REPOSITORY_CAPACITY_SAMPLED,
  REPOSITORY_CHUNKS_MEASURED,
  REPOSITORY_GARBAGE_COLLECTED,
  REPOSITORY_LOW_SPACE,
  REPOSITORY_REGISTERED,
  REPOSITORY_REMOVED,
  REPOSITORY_SETTINGS_CHANGED,
  REPOSITORY_SPACE_RECOVERED,
  REPOSITORY_STREAM_PREFIX,
  layoutOf,
  RepositoryCapacitySampled,
  RepositoryChunksMeasured,
  RepositoryDefinition,
  RepositoryGarbageCollected,
  RepositorySettingsChanged,
} from '../../src/repositories/registry/repository.events';
import { RepositoryView } from './repository.entity';

@Injectable()
export class RepositoriesProjector implements Projector {
  readonly name = 'repositories';
  readonly filter = { streamPrefixes: [REPOSITORY_STREAM_PREFIX] };
  readonly tables = ['rm_repositories'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const repo = manager.getRepository(RepositoryView);
    const repositoryId = (event.data as { repositoryId: string }).repositoryId;
    switch (event.type) {
      case REPOSITORY_REGISTERED: {
        const d = event.data as unknown as RepositoryDefinition;
        const source = d.nfs ? { ...d.nfs } : d.cifs ? { share: d.cifs.share, username: d.cifs.username, passwordFile: d.cifs.passwordFile, options: d.cifs.options } : null;
        await repo.insert({ repositoryId, name: d.name, kind: d.kind, root: d.root, source, immutableDays: d.immutableDays ?? null, maxChainDepth: d.maxChainDepth ?? null, layout: layoutOf(d), encryption: d.encryption ?? null, status: 'active', totalBytes: null, freeBytes: null, lowSpace: false, sampledAt: null, registeredAt: event.createdAt });
        return;
      }
      case REPOSITORY_CAPACITY_SAMPLED: {
        const d = event.data as unknown as RepositoryCapacitySampled['data'];
        await repo.update({ repositoryId }, { totalBytes: String(d.totalBytes), freeBytes: String(d.freeBytes), sampledAt: event.createdAt });
        return;
      }
      case REPOSITORY_LOW_SPACE:
        await repo.update({ repositoryId }, { lowSpace: true });
        return;
      case REPOSITORY_SPACE_RECOVERED:
        await repo.update({ repositoryId }, { lowSpace: false });
        return;
      case REPOSITORY_REMOVED:
        await repo.update({ repositoryId }, { status: 'removed' });
        return;
      case REPOSITORY_SETTINGS_CHANGED:
        await repo.update({ repositoryId }, { maxChainDepth: (event.data as unknown as RepositorySettingsChanged['data']).maxChainDepth });
        return;
      case REPOSITORY_CHUNKS_MEASURED: {
        const { repositoryId: _, ...space } = event.data as unknown as RepositoryChunksMeasured['data'];
        await repo.update({ repositoryId }, { chunkSpace: { ...space, measuredAt: event.createdAt.toISOString() } });
        return;
      }
      case REPOSITORY_GARBAGE_COLLECTED: {
        const { packsRemoved, packsRepacked = 0, bytesFreed, durationMs } = event.data as unknown as RepositoryGarbageCollected['data'];
        await repo.update({ repositoryId }, { lastCollection: { packsRemoved, packsRepacked, bytesFreed, durationMs, at: event.createdAt.toISOString() } });
        return;
      }
    }
  }
}
