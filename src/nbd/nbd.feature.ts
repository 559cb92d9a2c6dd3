import { RecordQemuNbdExitedHandler } from './exports/commands/record-qemu-nbd-exited.handler';
import { RecordQemuNbdStartFailedHandler } from './exports/commands/record-qemu-nbd-start-failed.handler';
import { RecordQemuNbdStartedHandler } from './exports/commands/record-qemu-nbd-started.handler';
import { RecordQemuNbdStoppedHandler } from './exports/commands/record-qemu-nbd-stopped.handler';
import { RequestQemuNbdStartHandler } from './exports/commands/request-qemu-nbd-start.handler';
import { ExportPathPolicy } from './exports/export-path-policy';
import { NbdExportsController } from './exports/nbd-exports.controller';
import { NbdExportsService } from './exports/nbd-exports.service';
import { QemuNbdProcessStates } from './exports/qemu-nbd-process-states';
import { NbdMetrics } from './nbd-metrics';
import { AllocateNbdPortHandler } from './ports/commands/allocate-nbd-port.handler';
import { ReleaseJobPortsHandler } from './ports/commands/release-job-ports.handler';
import { ReleaseNbdPortHandler } from './ports/commands/release-nbd-port.handler';
import { NbdPortPool } from './ports/nbd-port-pool';
import { NbdPortsController } from './ports/nbd-ports.controller';

/** What the NBD feature adds to the hub module. */
export const nbdFeature = {
  controllers: [NbdPortsController, NbdExportsController],
  providers: [
    NbdPortPool,
    AllocateNbdPortHandler,
    ReleaseNbdPortHandler,
    ReleaseJobPortsHandler,
    RequestQemuNbdStartHandler,
    RecordQemuNbdStartedHandler,
    RecordQemuNbdStartFailedHandler,
    RecordQemuNbdExitedHandler,
    RecordQemuNbdStoppedHandler,
    QemuNbdProcessStates,
    ExportPathPolicy,
    NbdExportsService,
    NbdMetrics,
  ],
};
