import { ReadModel } from '../read-model';
import { ExportedFileHandler, QemuNbdProcessesHandler } from './qemu-nbd-processes.queries';
import { QemuNbdProcessesProjector } from './qemu-nbd-processes.projector';

export const qemuNbdProcessesReadModel: ReadModel = {
  projector: QemuNbdProcessesProjector,
  queryHandlers: [QemuNbdProcessesHandler, ExportedFileHandler],
};
