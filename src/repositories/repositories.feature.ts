import { RepositoryMounts } from './adapters/repository-mounts';
import { RecordCapacitySampleHandler } from './commands/record-capacity-sample.handler';
import { RegisterRepositoryHandler } from './commands/register-repository.handler';
import { RemoveRepositoryHandler } from './commands/remove-repository.handler';
import { RepositoriesController } from './registry/repositories.controller';
import { RepositoriesService } from './registry/repositories.service';
import { RepositoryLifecycleWorkflow } from './repository-lifecycle.workflow';

/** Repositories: registering, removing and measuring them (the chains they hold are src/restore-points/restore-points.feature.ts). */
export const repositoriesFeature = {
  controllers: [RepositoriesController],
  providers: [RegisterRepositoryHandler, RemoveRepositoryHandler, RecordCapacitySampleHandler, RepositoryLifecycleWorkflow, RepositoryMounts, RepositoriesService],
};
