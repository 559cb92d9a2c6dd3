import { SyncRestorePointHandler } from '../restore-points/commands/sync-restore-point.handler';
import { SyncJobHandler } from './jobs/commands/sync-job.handler';
import { SyncJobsController } from './jobs/sync-jobs.controller';
import { RegisterRemoteHandler } from './remotes/commands/register-remote.handler';
import { ReplaceRemoteTokenHandler } from './remotes/commands/replace-remote-token.handler';
import { RemoteRegistry } from './remotes/remote-registry';
import { RemoteTokens } from './remotes/remote-tokens';
import { HubSecrets } from '../database/hub-secrets';
import { RemotesController } from './remotes/remotes.controller';
import { SyncSourceController } from './source/sync-source.controller';
import { SyncSourceService } from './source/sync-source.service';
import { SyncWorkflow } from './sync.workflow';

/**
 * Hub-to-hub sync: as the source, a hub lists its restore points and serves their files to a hub holding a sync
 * token; as the target, a hub registers remotes and runs sync jobs that pull what it does not hold.
 */
export const syncFeature = {
  controllers: [SyncSourceController, RemotesController, SyncJobsController],
  providers: [SyncSourceService, RemoteRegistry, RemoteTokens, HubSecrets, RegisterRemoteHandler, ReplaceRemoteTokenHandler, SyncJobHandler, SyncRestorePointHandler, SyncWorkflow],
};
