import { JobUploads } from './adapters/job-uploads';
import { TargetFiles } from './adapters/target-files';
import { AgentOwnsJobGuard } from './agent-owns-job.guard';
import { BackupEventsStream } from './backup-events.stream';
import { BackupJobReader } from './backup-job.reader';
import { BackupWorkflow } from './backup.workflow';
import { BackupsController } from './backups.controller';
import { DigestsController } from './digests.controller';
import { CancelBackupHandler } from './commands/cancel-backup.handler';
import { CompleteBackupHandler } from './commands/complete-backup.handler';
import { DecideBackupTypeHandler } from './commands/decide-backup-type.handler';
import { FailBackupHandler } from './commands/fail-backup.handler';
import { RecordAgentReportHandler } from './commands/record-agent-report.handler';
import { RecordTargetsPreparedHandler } from './commands/record-targets-prepared.handler';
import { RecordTargetsReleasedHandler } from './commands/record-targets-released.handler';
import { ReleaseVmClaimHandler } from './commands/release-vm-claim.handler';
import { RequestBackupHandler } from './commands/request-backup.handler';
import { RequestSnapshotHandler } from './commands/request-snapshot.handler';
import { StartBackupHandler } from './commands/start-backup.handler';
import { JobsInProcess } from './jobs-in-process';
import { RunningJobsHoldChains } from './running-jobs-hold-chains';

export const backupsFeature = {
  controllers: [BackupsController, DigestsController],
  providers: [
    RequestBackupHandler,
    CancelBackupHandler,
    RecordAgentReportHandler,
    StartBackupHandler,
    DecideBackupTypeHandler,
    RecordTargetsPreparedHandler,
    RequestSnapshotHandler,
    RecordTargetsReleasedHandler,
    CompleteBackupHandler,
    FailBackupHandler,
    ReleaseVmClaimHandler,
    BackupWorkflow,
    JobsInProcess,
    BackupJobReader,
    RunningJobsHoldChains,
    AgentOwnsJobGuard,
    TargetFiles,
    JobUploads,
    BackupEventsStream,
  ],
};
