import { RepositoryMounts } from './adapters/repository-mounts';
import { ChunkSpaceWorkflow } from './chunk-space.workflow';
import { RecordChunkSpaceHandler } from './commands/record-chunk-space.handler';
import { ChangeRepositorySettingsHandler } from './commands/change-repository-settings.handler';
import { RecordCapacitySampleHandler } from './commands/record-capacity-sample.handler';
import { RegisterRepositoryHandler } from './commands/register-repository.handler';
import { RemoveRepositoryHandler } from './commands/remove-repository.handler';
import { RepositoriesController } from './registry/repositories.controller';
import { RepositoriesService } from './registry/repositories.service';
import { RepositoryLifecycleWorkflow } from './repository-lifecycle.workflow';
import { RepositoryMetrics } from './repository-metrics';

/** Repositories: registering, changing their settings, removing and measuring them (the chains they hold are src/restore-points/restore-points.feature.ts). */
export const repositoriesFeature = {
  controllers: [RepositoriesController],
  providers: [RegisterRepositoryHandler, RemoveRepositoryHandler, ChangeRepositorySettingsHandler, RecordCapacitySampleHandler, RecordChunkSpaceHandler, ChunkSpaceWorkflow, RepositoryMetrics, RepositoryLifecycleWorkflow, RepositoryMounts, RepositoriesService],
};
