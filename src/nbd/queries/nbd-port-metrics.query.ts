import { Query } from '@nestjs/cqrs';

export interface NbdPortMetrics {
  total: number;
  allocated: number;
  available: number;
  allocationsTotal: number;
  releasesTotal: number;
}

/** Size and use of this host's port pool. */
export class NbdPortMetricsQuery extends Query<NbdPortMetrics> {}
