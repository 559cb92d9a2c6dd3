import { Query } from '@nestjs/cqrs';

export interface ActiveNbdLease {
  port: number;
  leaseId: string;
  jobId: string;
  diskId: string;
  allocatedAt: Date;
  allocatedBy: string;
}

/** This host's leased ports, lowest first. */
export class ActiveNbdLeasesQuery extends Query<ActiveNbdLease[]> {}
