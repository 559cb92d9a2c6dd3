import { Query } from '@nestjs/cqrs';
import { RecordedBackup } from '../simulate';

export interface SimulationHistory {
  vms: { vmId: string; name: string; agentId: string }[];
  backups: RecordedBackup[];
}

/** Every VM the agents reported and every completed backup into the repository, as the events recorded them. */
export class SimulationHistoryQuery extends Query<SimulationHistory> {
  constructor(readonly repositoryId: string) {
    super();
  }
}
