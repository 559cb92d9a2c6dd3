import { Type } from '@nestjs/common';
import { ClosePointExportHandler } from './commands/close-point-export.handler';
import { OpenPointExportHandler } from './commands/open-point-export.handler';
import { RecordDiskImageDownloadHandler } from './commands/record-disk-image-download.handler';
import { DiskImageDownloadWorkflow } from './disk-image-download.workflow';
import { DiskImagesController } from './disk-images.controller';
import { PointExportStates } from './point-export-states';
import { PointExportWorkflow } from './point-export.workflow';

/** Disk restore without a hypervisor: image downloads and NBD exports of restore points. */
export const diskImagesFeature: { controllers: Type[]; providers: Type[] } = {
  controllers: [DiskImagesController],
  providers: [RecordDiskImageDownloadHandler, OpenPointExportHandler, ClosePointExportHandler, DiskImageDownloadWorkflow, PointExportWorkflow, PointExportStates],
};
