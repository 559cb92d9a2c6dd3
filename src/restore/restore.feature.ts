import { Type } from '@nestjs/common';
import { RestoreFilesService } from './restore-files.service';
import { RestoreMetrics } from './restore-metrics';
import { RestoreMountsController } from './restore-mounts.controller';
import { RestoreMountsService } from './restore-mounts.service';

/** File-level restore: mounts of restore points, browsing and downloads. */
export const restoreFeature: { controllers: Type[]; providers: Type[] } = {
  controllers: [RestoreMountsController],
  providers: [RestoreMountsService, RestoreFilesService, RestoreMetrics],
};
