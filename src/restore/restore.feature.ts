import { Type } from '@nestjs/common';
import { RestoreDownloads } from './adapters/restore-downloads';
import { MarkRestoreMountFailedHandler } from './commands/mark-restore-mount-failed.handler';
import { MarkRestoreMountReadyHandler } from './commands/mark-restore-mount-ready.handler';
import { RecordArchiveDownloadHandler } from './commands/record-archive-download.handler';
import { RecordFileDownloadHandler } from './commands/record-file-download.handler';
import { RecordRestoreMountAccessHandler } from './commands/record-restore-mount-access.handler';
import { ReleaseRestoreMountHandler } from './commands/release-restore-mount.handler';
import { RequestRestoreMountHandler } from './commands/request-restore-mount.handler';
import { LiveMounts } from './live-mounts';
import { MountStories } from './mount-stories';
import { RestoreMetrics } from './restore-metrics';
import { RestoreMountWorkflow } from './restore-mount.workflow';
import { RestoreMountsController } from './restore-mounts.controller';

/** File-level restore: mounts of restore points, browsing and downloads. */
export const restoreFeature: { controllers: Type[]; providers: Type[] } = {
  controllers: [RestoreMountsController],
  providers: [
    RequestRestoreMountHandler,
    MarkRestoreMountReadyHandler,
    MarkRestoreMountFailedHandler,
    RecordRestoreMountAccessHandler,
    RecordFileDownloadHandler,
    RecordArchiveDownloadHandler,
    ReleaseRestoreMountHandler,
    RestoreMountWorkflow,
    RestoreDownloads,
    LiveMounts,
    MountStories,
    RestoreMetrics,
  ],
};
