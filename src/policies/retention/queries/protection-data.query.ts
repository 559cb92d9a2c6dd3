import { Query } from '@nestjs/cqrs';
import { PolicyRecord, VmIdentity } from '../selection';

/** A completed backup no retention decision has named yet. */
export interface BackupAwaitingRetention {
  jobId: string;
  vmId: string;
  repositoryId: string;
  policyId: string | null;
  finishedAt: Date;
}

export interface ProtectionData {
  policies: PolicyRecord[];
  vms: VmIdentity[];
}

/** Every policy (deleted ones with their deletion time) and every VM the agents reported. */
export class ProtectionDataQuery extends Query<ProtectionData> {}

/** Backups that completed within the last `windowMs` (on the database's clock, where their completion was recorded) with no retention decision naming them. */
export class BackupsAwaitingRetentionQuery extends Query<BackupAwaitingRetention[]> {
  constructor(readonly windowMs: number) {
    super();
  }
}

/** VMs with restore points in a repository. */
export class VmsWithPointsQuery extends Query<string[]> {
  constructor(readonly repositoryId: string) {
    super();
  }
}
