import { ReadModel } from './read-model';
import { agentsReadModel } from './agents/read-model';
import { apiTokensReadModel } from './api-tokens/read-model';
import { backupJobsReadModel } from './backup-jobs/read-model';
import { nbdLeasesReadModel } from './nbd-leases/read-model';
import { qemuNbdProcessesReadModel } from './qemu-nbd-processes/read-model';
import { repositoriesReadModel } from './repositories/read-model';
import { restoreMountsReadModel } from './restore-mounts/read-model';
import { restorePointsReadModel } from './restore-points/read-model';
import { repositoryUsageReadModel } from './repository-usage/read-model';
import { protectionReportReadModel } from './protection-report/read-model';
import { policiesReadModel } from './policies/read-model';
import { restoresReadModel } from './restores/read-model';
import { pointExportsReadModel } from './point-exports/read-model';
import { tenancyReadModel } from './tenancy/read-model';
import { remotesReadModel, syncJobsReadModel } from './sync/read-model';

/** Every read model the hub runs: composed here, never imported by a feature. */
export const READ_MODELS: ReadModel[] = [
  apiTokensReadModel,
  nbdLeasesReadModel,
  qemuNbdProcessesReadModel,
  repositoriesReadModel,
  restorePointsReadModel,
  repositoryUsageReadModel,
  agentsReadModel,
  backupJobsReadModel,
  restoreMountsReadModel,
  protectionReportReadModel,
  policiesReadModel,
  restoresReadModel,
  pointExportsReadModel,
  tenancyReadModel,
  remotesReadModel,
  syncJobsReadModel,
];
