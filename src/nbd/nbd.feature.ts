import { ExportPathPolicy } from './exports/export-path-policy';
import { NbdExportsController } from './exports/nbd-exports.controller';
import { NbdExportsService } from './exports/nbd-exports.service';
import { NbdMetrics } from './nbd-metrics';
import { AllocateNbdPortHandler, ReleaseJobPortsHandler, ReleaseNbdPortHandler } from './ports/nbd-port.handlers';
import { NbdPortPool } from './ports/nbd-port-pool';
import { NbdPortsController } from './ports/nbd-ports.controller';

/** What the NBD feature adds to the hub module. */
export const nbdFeature = {
  controllers: [NbdPortsController, NbdExportsController],
  providers: [NbdPortPool, AllocateNbdPortHandler, ReleaseNbdPortHandler, ReleaseJobPortsHandler, ExportPathPolicy, NbdExportsService, NbdMetrics],
};
