import { ReadModel } from '../read-model';
import { QemuNbdProcessesProjector } from './qemu-nbd-processes.projector';

export const qemuNbdProcessesReadModel: ReadModel = {
  projector: QemuNbdProcessesProjector,
  queryHandlers: [],
};
